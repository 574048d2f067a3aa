"""Front-end assets of the portal, from the npm registry (never a CDN at run time).

`package.json` and the committed `package-lock.json` pin them; `python -m services.portal.assets`
runs `npm ci` here (node_modules stays in this folder, git-ignored) and copies the files the
portal serves into `services/portal/static/vendor/` (git-ignored), then touches
`static/vendor/.installed`, the stamp the Makefile depends on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static"
VENDOR = STATIC / "vendor"
STAMP = VENDOR / ".installed"
NODE_MODULES = HERE / "node_modules"

# The icons the templates use (lucide-static, ISC licence), inlined by the `icon()` helper.
ICONS = (
    "arrow-left",
    "building-2",
    "check",
    "chevron-right",
    "circle-alert",
    "circle-check",
    "clock",
    "external-link",
    "globe",
    "history",
    "info",
    "lock",
    "log-out",
    "mail",
    "map-pin",
    "palette",
    "pencil",
    "phone",
    "plus",
    "search",
    "send",
    "settings",
    "shield-check",
    "store",
    "tag",
    "triangle-alert",
    "user",
    "user-plus",
    "users",
    "x",
)

# (source under node_modules, destination under static/vendor)
FILES: tuple[tuple[str, str], ...] = (
    ("htmx.org/dist/htmx.min.js", "htmx.min.js"),
    ("htmx.org/LICENSE", "licenses/htmx.org.txt"),
    (
        "@fontsource-variable/inter/files/inter-latin-wght-normal.woff2",
        "fonts/inter-latin-wght-normal.woff2",
    ),
    (
        "@fontsource-variable/inter/files/inter-latin-ext-wght-normal.woff2",
        "fonts/inter-latin-ext-wght-normal.woff2",
    ),
    ("@fontsource-variable/inter/LICENSE", "licenses/inter.txt"),
    ("lucide-static/LICENSE", "licenses/lucide.txt"),
    *((f"lucide-static/icons/{name}.svg", f"icons/{name}.svg") for name in ICONS),
)


def npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: install Node.js 20+ (it brings npm) and retry")
    subprocess.run(  # noqa: S603  (fixed arguments)
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True
    )


def copy_files() -> list[Path]:
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    written = []
    for source, dest in FILES:
        src = NODE_MODULES / source
        if not src.is_file():
            raise SystemExit(f"missing {src}: is package-lock.json in step with FILES?")
        target = VENDOR / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        written.append(target)
    return written


def build() -> None:
    npm_ci()
    written = copy_files()
    STAMP.touch()
    print(
        f"portal assets: {len(written)} files in {VENDOR.relative_to(HERE.parents[2])}",
        file=sys.stderr,
    )
