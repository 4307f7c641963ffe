"""What an operator does in the browser, in a few words: type into a field, press a
button and wait for the next page, read what the page says."""

from __future__ import annotations

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 15  # s


def wait(browser, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(browser, timeout)


def field(browser, name: str) -> WebElement:
    return browser.find_element(By.NAME, name)


def type_into(browser, name: str, text: str, clear: bool = True) -> WebElement:
    element = field(browser, name)
    if clear:
        element.clear()
    element.send_keys(text)
    return element


def click(browser, target: str | WebElement) -> None:
    """Press a button or a link (a CSS selector or the element) and wait for the page it loads."""
    element = browser.find_element(By.CSS_SELECTOR, target) if isinstance(target, str) else target
    browser.execute_script("document.documentElement.dataset.left = '1'")  # this page, not the next
    try:
        element.click()
    except WebDriverException as exc:
        # chromedriver sometimes looks at the pressed button once the next page replaced
        # it and says so; the click was given (if not, the wait below times out)
        if GONE not in str(exc):
            raise
    wait(browser).until(_next_page, "no new page after the click")


GONE = "does not belong to the document"
NEXT_PAGE = "return !document.documentElement.dataset.left && document.readyState === 'complete'"


def _next_page(browser) -> bool:
    try:
        return browser.execute_script(NEXT_PAGE)
    except WebDriverException:  # asked while the pages change over
        return False


def button(browser, value: str, name: str = "to") -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'button[name="{name}"][value="{value}"]')


def values(browser, css: str, attribute: str = "value") -> list[str]:
    return [e.get_attribute(attribute) for e in browser.find_elements(By.CSS_SELECTOR, css)]


def text_of(browser, css: str = "main") -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def flashes(browser) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "p.flash")]
