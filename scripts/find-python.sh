# Sourced by scripts/setup.sh and scripts/lock.sh: one search for an interpreter.
# find_python V...: the first interpreter of the given versions on PATH or under pyenv.
find_python() {
  local v c
  for v in "$@"; do
    for c in "python$v" "$(command -v pyenv >/dev/null && pyenv root)/versions/$v"*/bin/"python$v"; do
      if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv, ensurepip' 2>/dev/null; then
        command -v "$c"; return 0
      fi
    done
  done
  return 1
}
