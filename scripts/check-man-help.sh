#!/usr/bin/env bash
# Checks that the manual pages keep up with the programs: every option that
# `hermeticd --help` and `hermeticctl [COMMAND] --help` print, and every
# hermeticctl command, appears in the page's markdown source (docs/man/), and
# every hermeticd option that the config file takes appears in the shipped
# config/hermeticd.conf. Run by ctest (ManPagesCoverHelp) and scripts/package-test.sh.
#   usage: scripts/check-man-help.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: check-man-help.sh BUILD_DIR}
hermeticd=$build/hermeticd
hermeticctl=$build/hermeticctl
failures=0

# The page's text with markdown escapes removed ("\--socket" -> "--socket").
page_text() { sed 's/\\//g' "$src/docs/man/$1.md"; }
options_in() { grep -oE -- '--[a-z][a-z0-9-]+' | sort -u; }
# The options a help text defines: the ones that begin its lines ("  --socket arg",
# "  --help, --version"), not those its descriptions mention.
defined_options() { grep -oE -- '^ +--[a-z][a-z0-9-]+(, --[a-z][a-z0-9-]+)*' | options_in; }

# expect_in NAME WHAT TEXT ITEMS...: each item must occur in TEXT as a whole word.
expect_in() {
  local name=$1 what=$2 text=$3
  shift 3
  for item in "$@"; do
    if ! grep -qE -- "(^|[^a-z0-9-])${item}([^a-z0-9-]|$)" <<<"$text"; then
      echo "check-man-help: $name does not mention $what $item" >&2
      failures=$((failures + 1))
    fi
  done
}

# hermeticd(8): every option of --help.
mapfile -t d_opts < <("$hermeticd" --help | defined_options)
((${#d_opts[@]} > 20)) || { echo "check-man-help: hermeticd --help listed only ${#d_opts[@]} options" >&2; exit 1; }
expect_in "docs/man/hermeticd.8.md" "hermeticd option" "$(page_text hermeticd.8)" "${d_opts[@]}"

# The config file: the options of the "command line or config file" part, without "--".
mapfile -t conf_keys < <("$hermeticd" --help | sed -n '/^Options (command line or config file)/,$p' | defined_options | sed 's/^--//')
((${#conf_keys[@]} > 20)) || { echo "check-man-help: no config-file options found in hermeticd --help" >&2; exit 1; }
expect_in "config/hermeticd.conf" "config key" "$(sed -E 's/^#?([a-z-]+) =.*/\1/' "$src/config/hermeticd.conf")" "${conf_keys[@]}"

# hermeticctl(1): the options of the usage and of each command's own --help, and
# every command the usage lists.
ctl_help=$("$hermeticctl" --help)
for cmd in run audit policy attest pubkey; do
  ctl_help+=$'\n'$("$hermeticctl" "$cmd" --help)
done
mapfile -t c_opts < <(options_in <<<"$ctl_help")
mapfile -t c_cmds < <("$hermeticctl" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
((${#c_opts[@]} > 10 && ${#c_cmds[@]} > 10)) || { echo "check-man-help: hermeticctl --help parsed badly" >&2; exit 1; }
ctl_page=$(page_text hermeticctl.1)
expect_in "docs/man/hermeticctl.1.md" "hermeticctl option" "$ctl_page" "${c_opts[@]}"
expect_in "docs/man/hermeticctl.1.md" "hermeticctl command" "$ctl_page" "${c_cmds[@]}"

if ((failures)); then
  echo "check-man-help: $failures missing; update docs/man/*.md (and regenerate the roff: docs/man/README.md)" >&2
  exit 1
fi
echo "check-man-help: ${#d_opts[@]} hermeticd options, ${#conf_keys[@]} config keys, ${#c_opts[@]} hermeticctl options, ${#c_cmds[@]} commands: all documented"
