/* The composer's live counter: characters, GSM-7 or UCS-2, and SMS parts, as the
   operator types. The alphabet comes from the form (bot/gsm7.py, the one table); the
   Preview button gives the same counts, and the transliteration, without JavaScript. */
(function () {
  "use strict";
  var form = document.getElementById("composer");
  if (!form) { return; }
  var basic = form.getAttribute("data-gsm7-basic") || "";
  var extension = form.getAttribute("data-gsm7-extension") || "";
  var charsLabel = form.getAttribute("data-label-chars") || "characters";
  var smsLabel = form.getAttribute("data-label-segments") || "SMS";

  function count(text) {
    var septets = 0, gsm = true, chars = 0;
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      var code = text.charCodeAt(i);
      if (code < 0xDC00 || code > 0xDFFF) { chars++; }  /* a surrogate pair is one character */
      if (basic.indexOf(ch) >= 0) { septets += 1; }
      else if (extension.indexOf(ch) >= 0) { septets += 2; }
      else { gsm = false; }
    }
    if (gsm) {
      return {chars: chars, encoding: "GSM-7", units: septets,
              segments: septets <= 160 ? 1 : Math.ceil(septets / 153), limit: septets <= 160 ? 160 : 153};
    }
    var units = text.length;  /* UTF-16 code units, as UCS-2 counts them */
    return {chars: chars, encoding: "UCS-2", units: units,
            segments: units <= 70 ? 1 : Math.ceil(units / 67), limit: units <= 70 ? 70 : 67};
  }

  function show(area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    if (!out) { return; }
    var text = area.value.trim();
    if (!text) { out.textContent = ""; out.className = "counter"; return; }
    var c = count(text);
    out.textContent = c.chars + " " + charsLabel + " · " + c.encoding + " · " + c.units + "/" +
      (c.limit * c.segments) + " · " + c.segments + " " + smsLabel;
    out.className = "counter " + (c.encoding === "GSM-7" ? "gsm7" : "ucs2") + (c.segments > 1 ? " long" : "");
  }

  var areas = form.querySelectorAll("textarea[data-counter]");
  for (var i = 0; i < areas.length; i++) {
    areas[i].addEventListener("input", function (event) { show(event.target); });
    show(areas[i]);
  }
}());
