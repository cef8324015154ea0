"""Open a bamkit report in headless Chromium (Debian's ``chromium``) and check that it renders offline.

A small wrapper page (written to a temporary folder, never into the report) loads the report in an iframe and
counts its images that decoded (``naturalWidth > 0``); Chromium's ``--dump-dom`` prints the verdict, and its
console log (``--enable-logging=stderr``) is scanned for errors. The report itself contains no script.
Network access is disabled (``--proxy-server`` to a dead port), so anything external would fail to load.

Usage:
    python bench/report_browser.py out/report/index.html
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRAPPER = """<!DOCTYPE html><html><body><iframe id="f" src="{src}" style="width:1200px;height:900px"></iframe>
<pre id="out">pending</pre><script>
document.getElementById('f').addEventListener('load', function () {{
  var d = this.contentDocument, imgs = Array.from(d.images);
  var broken = imgs.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }}).length;
  document.getElementById('out').textContent = 'RESULT ' + JSON.stringify({{
    images: imgs.length, broken: broken, title: d.title, height: d.body.scrollHeight}});
}});
</script></body></html>"""


def check_page(page: str | Path, timeout: float = 120.0) -> dict:
    """Render ``page``; return {images, broken, title, height, errors, seconds}."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise RuntimeError("chromium not found; install it with apt-get install -y chromium")
    page = Path(page).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "wrapper.html"
        wrapper.write_text(WRAPPER.format(src=page.as_uri()), encoding="utf-8")
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--proxy-server=127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp}/profile",
            "--virtual-time-budget=10000",
            "--dump-dom",
            wrapper.as_uri(),
        ]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        secs = time.perf_counter() - t0
    m = re.search(r"RESULT (\{.*?\})", r.stdout)
    res = json.loads(m.group(1).replace("&quot;", '"')) if m else {"images": 0, "broken": -1, "title": None}
    # console messages of pages appear as ":INFO:CONSOLE(line)" lines in the log
    errors = [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln]  # the report has no script: any is wrong
    errors += [ln for ln in r.stderr.splitlines() if "net::ERR" in ln]
    res.update(errors=errors, seconds=round(secs, 2), returncode=r.returncode)
    if not m:
        res["errors"].append(f"no result in the DOM dump (rc {r.returncode}): {r.stderr[-500:]}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", help="report index.html")
    args = ap.parse_args(argv)
    res = check_page(args.page)
    print(f"{'images':>8} {'broken':>7} {'errors':>7} {'seconds':>8}  title")
    print(
        f"{res['images']:>8} {res['broken']:>7} {len(res['errors']):>7} {res['seconds']:>8}  {res.get('title')}"
    )
    for e in res["errors"]:
        print("  ", e)
    return 0 if res["images"] > 0 and res["broken"] == 0 and not res["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
