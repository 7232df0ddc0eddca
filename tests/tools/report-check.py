#!/usr/bin/env python3
"""report-check.py: checks a `moebench report` HTML page, statically and in a
headless Chromium. Standard library only.

usage: report-check.py [--static-only | --browser-only] [--min-svg N] [--screenshot FILE]
                       REPORT.html

Static checks (python's html.parser):
  - every end tag closes the innermost open element, and none is left open
    (void elements and self-closed SVG elements aside): "well formed enough";
  - nothing runs or is fetched: no <script>, <iframe>, <object>, <embed>,
    <link>, <img>, <foreignObject>; no on* attribute; no src attribute; every
    href is a relative path or a #fragment (no scheme, no //host); no url()
    other than url(#...);
  - at least --min-svg <svg> elements (default 1).
Browser checks (skipped with "skip: <why>" and exit 0 when no chromium):
  - --dump-dom: the page loads and the DOM holds as many <svg> elements;
  - the console log (--enable-logging=stderr) has no CONSOLE message of an
    uncaught error;
  - a screenshot of the whole page (1200 px wide, up to 12000 px tall, at
    half scale) is not blank: it has pixels in gnuplot's own colours (lines
    and bars), which nothing else on the page uses. --screenshot FILE also
    keeps the top 1200x2000 of the page as a person sees it.
Exit status: 0 all passed (or browser skipped), 1 a check failed, 2 usage.
Every Chromium run is bounded by a 60 s timeout.
"""
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "param", "source", "track", "wbr"}
FORBIDDEN = {"script", "iframe", "object", "embed", "link", "img", "foreignobject",
             "frame", "frameset", "base", "form", "audio", "video", "source"}
CHROMIUM_TIMEOUT = 60


class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.svgs, self.figures = [], [], 0, []

    def err(self, msg):
        line, col = self.getpos()
        if len(self.errors) < 20:
            self.errors.append(f"line {line}:{col}: {msg}")

    def attrs_ok(self, tag, attrs):
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.err(f"<{tag}> has an event handler {name}")
            if name == "src":
                self.err(f"<{tag}> loads {value!r}")
            if name in ("href", "xlink:href"):
                if re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", value, re.I):
                    self.err(f"<{tag}> points outside the page: {value!r}")
            if re.search(r"url\(\s*(?!#)", value, re.I) or "javascript:" in value.lower():
                self.err(f"<{tag}> {name} fetches or runs something: {value!r}")
            if tag == "figure" and name == "id":
                self.figures.append(value)

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN:
            self.err(f"forbidden element <{tag}>")
        if tag == "svg":
            self.svgs += 1
        self.attrs_ok(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag in FORBIDDEN:
            self.err(f"forbidden element <{tag}>")
        if tag == "svg":
            self.svgs += 1
        self.attrs_ok(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack:
            self.err(f"</{tag}> closes nothing")
        elif self.stack[-1] != tag:
            self.err(f"</{tag}> closes <{self.stack[-1]}>")
            if tag in self.stack:  # resynchronise so one mistake is one error
                while self.stack and self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style":
            if re.search(r"url\(\s*(?!#)|@import", data, re.I):
                self.err("a style sheet fetches something")


def static_check(path, min_svg):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [f"not UTF-8: {e}"], 0, []
    c = Checker()
    c.feed(text)
    c.close()
    if c.stack:
        c.errors.append(f"left open at the end: {c.stack[-5:]}")
    if c.svgs < min_svg:
        c.errors.append(f"{c.svgs} <svg> elements, want at least {min_svg}")
    return c.errors, c.svgs, c.figures


def png_pixels(path):
    """Width, height, channels and the unfiltered rows of an 8-bit,
    non-interlaced PNG (what Chromium writes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h = int.from_bytes(hdr[0:4], "big"), int.from_bytes(hdr[4:8], "big")
    depth, ctype, interlace = hdr[8], hdr[9], hdr[12]
    if depth != 8 or interlace or ctype not in (2, 6):
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype})")
    ch = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride, rows, prev = w * ch, [], bytearray(w * ch)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(ch, stride):
                line[i] = (line[i] + line[i - ch]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - ch] if i >= ch else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - ch] if i >= ch else 0
                b, c = prev[i], prev[i - ch] if i >= ch else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, ch, rows


# gnuplot's default line colours, and the same at the bars' 0.8 fill opacity
# on white: the page itself (text, rules, links, notes) uses none of them.
GNUPLOT = [(148, 0, 211), (0, 158, 115), (86, 180, 233), (230, 159, 0), (240, 228, 66),
           (0, 114, 178), (229, 30, 36)]
GNUPLOT += [tuple(int(0.8 * c + 0.2 * 255) for c in rgb) for rgb in GNUPLOT]


def plot_pixels(path):
    """Pixels within a small distance of one of gnuplot's colours, and the
    number of distinct colours (up to 4096)."""
    w, h, ch, rows = png_pixels(path)
    hits, seen, cache = 0, set(), {}
    for line in rows:
        for x in range(0, w * ch, ch):
            rgb = (line[x], line[x + 1], line[x + 2])
            if len(seen) < 4096:
                seen.add(rgb)
            near = cache.get(rgb)
            if near is None:
                near = any(abs(rgb[0] - c[0]) + abs(rgb[1] - c[1]) + abs(rgb[2] - c[2]) < 40
                           for c in GNUPLOT)
                cache[rgb] = near
            hits += near
    return hits, len(seen)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def run_chromium(exe, profile, args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}"] + args
    return subprocess.run(cmd, capture_output=True, timeout=CHROMIUM_TIMEOUT, text=True,
                          errors="replace")


def browser_check(path, nsvg, shot):
    exe = chromium()
    if not exe:
        print("skip: chromium not found (apt-get install chromium)")
        return []
    errors = []
    url = "file://" + os.path.abspath(path)
    with tempfile.TemporaryDirectory(prefix="mb-chromium-") as profile:
        try:
            r = run_chromium(exe, profile, ["--enable-logging=stderr", "--v=0", "--dump-dom", url])
        except subprocess.TimeoutExpired:
            return [f"chromium --dump-dom did not finish in {CHROMIUM_TIMEOUT} s"]
        dom_svgs = len(re.findall(r"<svg[\s>]", r.stdout))
        if r.returncode != 0 or "</html>" not in r.stdout:
            errors.append(f"chromium --dump-dom failed (exit {r.returncode})")
        if dom_svgs != nsvg:
            errors.append(f"the DOM holds {dom_svgs} <svg> elements, the file {nsvg}")
        for line in r.stderr.splitlines():
            if "CONSOLE" in line and re.search(r"Uncaught|Error|ERROR:CONSOLE", line):
                errors.append("console: " + line.strip()[:300])
        # The whole page (up to 12000 px) at half scale, so that the plots are in
        # the picture wherever they are; and, when asked, the top 1200x2000 as a
        # person sees it.
        full = os.path.join(profile, "page.png")
        for out, size, scale in ((full, "1200,12000", "0.5"), (shot, "1200,2000", "1")):
            if not out:
                continue
            try:
                r = run_chromium(exe, profile, [f"--screenshot={out}", f"--window-size={size}",
                                                f"--force-device-scale-factor={scale}", url])
            except subprocess.TimeoutExpired:
                return errors + [f"chromium --screenshot did not finish in {CHROMIUM_TIMEOUT} s"]
            if r.returncode != 0 or not os.path.exists(out):
                return errors + [f"chromium --screenshot failed (exit {r.returncode})"]
        hits, distinct = plot_pixels(full)
        print(f"screenshot: {hits} pixels in gnuplot's colours, {distinct} colours")
        if distinct < 3 or hits < 1000:
            errors.append(f"no plot in the screenshot (blank): {hits} pixels in gnuplot's "
                          f"colours, {distinct} colours")
    return errors


def main(argv):
    static_only, browser_only, min_svg, shot, args = False, False, 1, None, []
    it = iter(argv)
    for a in it:
        if a == "--static-only":
            static_only = True
        elif a == "--browser-only":  # to show the browser checks fail on their own
            browser_only = True
        elif a == "--min-svg":
            min_svg = int(next(it))
        elif a == "--screenshot":
            shot = next(it)
        elif a.startswith("-"):
            print(__doc__, file=sys.stderr)
            return 2
        else:
            args.append(a)
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    errors, nsvg, figures = static_check(args[0], min_svg)
    print(f"{args[0]}: {nsvg} <svg> elements, {len(figures)} figures")
    if browser_only:
        errors = []
    if not static_only and not errors:
        errors += browser_check(args[0], nsvg, shot)
    for e in errors:
        print("FAIL: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
