#!/usr/bin/env bash
# Generates the ptibusctl(1) man page from docs/ptibusctl.md with pandoc (Debian's
# `pandoc`, in deploy/install-deps.sh): the Markdown page is the single source, its
# level-2 headings become the man page's sections.
#   deploy/man/gen-ptibusctl-man.sh [OUT]   default OUT: deploy/man/ptibusctl.1
# CMake runs it as the target `ptibusctl_man` and ctest checks that the committed page
# is up to date (test docs/ptibusctl_man).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/deploy/man/ptibusctl.1}
version=$(sed -n 's/^project(ptibus VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
# The first heading is the page's title (.TH, from the metadata), not a section; the
# sections' names are upper-case, as in every man page.
tail -n +2 "$top/docs/ptibusctl.md" | sed -E 's/^## (.*)$/## \U\1/' |
    pandoc --from gfm --to man --standalone --shift-heading-level-by=-1 \
    --metadata title=PTIBUSCTL --metadata section=1 \
    --metadata header="User Commands" --metadata footer="ptibus $version" \
    --metadata date="December 2026" --output "$out"
