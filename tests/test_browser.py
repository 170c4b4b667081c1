"""A real browser: JupyterLab serves the jupytext notebooks, headless Chromium runs them.

What the kernel-only tests cannot see: that JupyterLab opens the ``.py`` percent
notebooks as notebooks (jupytext's contents manager, plus the default viewer that
``jupyter/labconfig`` sets and setup.sh installs), that the widget front end in the
page and ipywidgets in the kernel agree well enough to draw the pool inspector and to
answer its slider and toggle, and that the walkthrough's figures reach the page.

JupyterLab runs as a subprocess on 127.0.0.1, a free port and a random token, with its
own config, data, runtime and settings folders under the test's tmp dir (never the
user's ~/.jupyter), and is stopped at the end, its kernels too, also on failure.
Skipped, naming what is missing, only when chromium, chromedriver, selenium or
JupyterLab are not installed (setup.sh installs all four where apt is available).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import mom
from mom.companion.reproduce import REPO_ROOT, list_notebooks

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = [name for name, ok in (
    ("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
    ("selenium", importlib.util.find_spec("selenium")),
    ("jupyterlab", importlib.util.find_spec("jupyterlab")),
    ("jupytext", importlib.util.find_spec("jupytext"))) if not ok]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (setup.sh installs Debian's "
                          "chromium and chromium-driver, and selenium + jupyterlab from the dev extra)")]

# the network is closed: without these Chromium hangs trying to reach Google
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"]
LABCONFIG = REPO_ROOT / "jupyter" / "labconfig" / "default_setting_overrides.json"
# the page's own view of the open notebook
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


# ----------------------------------------------------------------- JupyterLab
class Lab:
    """A JupyterLab server in ``base``: ``root`` is what it serves, ``out`` where the
    notebooks write."""

    def __init__(self, base: Path):
        self.base, self.root, self.out = base, base / "root", base / "out"
        self.runtime = base / "runtime"
        for d in (self.root, self.out, base / "config" / "labconfig"):
            d.mkdir(parents=True)
        self.token = secrets.token_hex(16)
        self.log = base / "lab.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _configure(self) -> dict[str, str]:
        config = self.base / "config"
        overrides = json.loads(LABCONFIG.read_text())  # the repository's: .py opens as a notebook
        # offline: no news or update checks (their pop-up could cover the widgets)
        overrides["@jupyterlab/apputils-extension:notification"] = {"fetchNews": "false",
                                                                     "checkForUpdates": False}
        (config / "labconfig" / "default_setting_overrides.json").write_text(json.dumps(overrides))
        (config / "jupyter_server_config.json").write_text(json.dumps({
            "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                       "expose_app_in_browser": True, "extension_manager": "readonly"},
            "ServerApp": {"open_browser": False, "port_retries": 0}}))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config),
               "JUPYTER_DATA_DIR": str(self.base / "data"), "JUPYTER_RUNTIME_DIR": str(self.runtime),
               "IPYTHONDIR": str(self.base / "ipython"),
               "JUPYTERLAB_SETTINGS_DIR": str(self.base / "lab-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.base / "lab-workspaces")}
        # the kernels import the mom this test imported (a worktree, a checkout)
        mom_root = str(Path(mom.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [mom_root, os.environ.get("PYTHONPATH")]))
        env.pop("MPLBACKEND", None)  # conftest's Agg would hide the inline figures
        return env

    def start(self, timeout: float = 120) -> None:
        env = self._configure()
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            cmd = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={self.port}",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.api("GET", "/api/status", timeout=2)
                    return
                except OSError:
                    time.sleep(0.5)
            if self.proc.poll() is None:
                break  # running but not answering: give up below
        self.stop()
        pytest.fail(f"JupyterLab did not start on port {self.port}:\n{self.log_tail()}")

    def api(self, method: str, path: str, timeout: float = 10):
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        try:
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)
        except OSError:
            pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.shutdown_kernels()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # any kernel left behind: its connection file lies in our runtime folder
        for pid in _pids_with_argument(str(self.runtime)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else "(no log)"

    def notebook(self, name: str, **values) -> str:
        """Copy notebook ``name`` into the served folder with its parameters cell's
        ``values`` replaced; returns the file name."""
        import jupytext
        source = list_notebooks([name])[0]
        nb = jupytext.read(source, fmt="py:percent")
        cell, = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        lines, seen = cell.source.splitlines(), set()
        for i, line in enumerate(lines):
            m = re.match(r"(\w+)\s*=", line)
            if m and m.group(1) in values:
                lines[i] = f"{m.group(1)} = {values[m.group(1)]!r}"
                seen.add(m.group(1))
        assert seen == set(values), f"{source.name} has no parameter {set(values) - seen}"
        cell.source = "\n".join(lines)
        jupytext.write(nb, self.root / source.name, fmt="py:percent")
        return source.name


def _pids_with_argument(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else ():
        try:
            if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def smoke_values(lab: Lab) -> dict[str, str]:
    return {"params": "smoke", "figures_dir": str(lab.out / "figures"),
            "results_dir": str(lab.out / "results"), "runs_dir": str(lab.out / "runs")}


# ------------------------------------------------------------------ the page
def wait_for(driver, condition, timeout: float, what: str, lab: Lab, shot: Path):
    """Poll ``condition(driver)`` until truthy; on timeout save a screenshot and fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition(driver)
        if value:
            return value
        if time.monotonic() > deadline:
            driver.save_screenshot(str(shot))
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; screenshot {shot}\n"
                        f"JupyterLab log:\n{lab.log_tail()}")
        time.sleep(0.5)


OPENED = f"""
if (document.querySelector('{PANEL} .jp-Notebook .jp-Cell')) return 'notebook';
if (document.querySelector('.jp-FileEditor')) return 'editor';
return null;"""
KERNEL_IDLE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return k ? k.status === 'idle' : false;"""
PROMPTS = f"""return Array.from(document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt'))
    .map(e => e.textContent.trim());"""
ERRORS = """
const out = [];
for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
  if (cell.model.type !== 'code') continue;
  for (let i = 0; i < cell.model.outputs.length; i++) {
    const o = cell.model.outputs.get(i).toJSON();
    if (o.output_type === 'error') out.push(o.ename + ': ' + o.evalue);
  }
}
return out;"""


def open_and_run_all(driver, lab: Lab, name: str, shots: Path, timeout: float) -> None:
    """Open ``name`` in JupyterLab, check it shows as a notebook, run all cells, wait
    until each code cell has run, and fail on any error output."""
    # a workspace of its own: JupyterLab would reopen the tabs (and kernels) of earlier tests
    driver.get(f"{lab.url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={lab.token}")
    opened = wait_for(driver, lambda d: d.execute_script(OPENED), 90, f"{name} to open", lab,
                      shots / "open.png")
    assert opened == "notebook", f"JupyterLab opened {name} as text, not as a notebook (jupytext)"
    wait_for(driver, lambda d: d.execute_script(KERNEL_IDLE), 90, "the kernel", lab,
             shots / "kernel.png")
    n_cells = len(driver.execute_script(PROMPTS))
    assert n_cells > 3, f"{name}: {n_cells} code cells - jupytext did not split the cells"
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return 1;")

    def finished(d):
        prompts = d.execute_script(PROMPTS)
        return (all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
                and d.execute_script(KERNEL_IDLE))
    wait_for(driver, finished, timeout, f"{name} to run", lab, shots / "run.png")
    errors = driver.execute_script(ERRORS)
    assert not errors, f"{name}: {errors}"


# the pool inspector as the page shows it; thumbnails fetched and hashed in the page
INSPECTOR = f"""
const done = arguments[arguments.length - 1];
const box = document.querySelector('{PANEL} .jp-OutputArea-output .widget-vbox');
const handle = box && box.querySelector('.widget-slider .noUi-handle');
const toggle = box && box.querySelector('.widget-toggle-button');
const info = box && box.querySelector(':scope > .widget-html .widget-html-content');
if (!handle || !toggle || !info) {{ done(null); return; }}
const rows = Array.from(box.querySelectorAll(':scope > .widget-vbox > .widget-vbox')).map(r => ({{
  title: r.querySelector('.widget-html-content').textContent,
  captions: Array.from(r.querySelectorAll('.widget-hbox .widget-html-content')).map(e => e.innerText),
  srcs: Array.from(r.querySelectorAll('img.widget-image')).map(e => e.src)}}));
const imgs = Array.from(box.querySelectorAll('img.widget-image'));
const loaded = imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
const digest = s => fetch(s).then(x => x.arrayBuffer()).then(b => {{
  const a = new Uint8Array(b); let h = 0;
  for (const v of a) h = (h * 31 + v) >>> 0;
  return a.length + ':' + h; }});
Promise.all(rows.map(r => Promise.all(r.srcs.map(digest)))).then(hashes => done({{
  info: info.textContent, slider: Number(handle.getAttribute('aria-valuenow')),
  pressed: toggle.classList.contains('mod-active'), loaded,
  rows: rows.map((r, i) => ({{...r, hashes: hashes[i]}}))}}),
  err => done({{error: String(err)}}));"""


def inspector_state(driver) -> dict | None:
    state = driver.execute_async_script(INSPECTOR)
    if state and "error" in state:
        raise AssertionError(f"reading the thumbnails failed: {state['error']}")
    return state


def anchor_of(state) -> int:
    return int(re.search(r"anchor #(\d+)", state["info"]).group(1))


def ids_and_weights(row) -> tuple[list[int], list[float]]:
    """Image ids and, for P+ rows, the weights ``w``, from the captions under the thumbnails."""
    ids = [int(re.match(r"#(\d+)", c).group(1)) for c in row["captions"]]
    weights = [float(m.group(1)) for c in row["captions"] if (m := re.search(r"w ([0-9.e+-]+)", c))]
    return ids, weights


def test_pool_inspector_answers_slider_and_toggle_in_jupyterlab(lab, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    t0 = time.perf_counter()
    name = lab.notebook("04_pool_inspector", **smoke_values(lab))
    try:
        open_and_run_all(browser, lab, name, tmp_path, timeout=240)

        def settled(previous=None, **want):
            """The inspector once it changed from ``previous`` as ``want`` says and then held
            still for one poll (the info line is redrawn before the thumbnails are)."""
            last = []

            def check(d):
                s = inspector_state(d)
                if not s or not s["loaded"] or any(s[k] != v for k, v in want.items()) or (
                        previous is not None and s["info"] == previous["info"]
                        and s["pressed"] == previous["pressed"]):
                    last.clear()
                    return None
                same = bool(last) and last[0] == s
                last[:] = [s]
                return s if same else None
            return check

        s0 = wait_for(browser, settled(), 60, "the inspector widgets", lab, tmp_path / "widgets.png")
        assert "pools: mom" in s0["info"] and not s0["pressed"]
        assert [r["title"] for r in s0["rows"]] == ["anchor", "P+", "P-"]

        # the anchor slider, by keyboard: focus its handle, one step right
        handle = browser.find_element(By.CSS_SELECTOR, f"{PANEL} .jp-OutputArea-output .noUi-handle")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        s1 = wait_for(browser, settled(s0, slider=s0["slider"] + 1), 60, "the next anchor", lab,
                      tmp_path / "slider.png")
        assert anchor_of(s1) != anchor_of(s0)
        assert s1["rows"][0]["hashes"] != s0["rows"][0]["hashes"]  # another anchor image
        assert set(s1["rows"][0]["srcs"]).isdisjoint(s0["rows"][0]["srcs"])
        pos0, w0 = ids_and_weights(s0["rows"][1])
        pos1, w1 = ids_and_weights(s1["rows"][1])
        assert w1 and (pos1, w1) != (pos0, w0)  # other P+ members, other weights
        assert s1["rows"][1]["hashes"] != s0["rows"][1]["hashes"]

        # the Euclidean baseline, by a click on the toggle
        toggle = browser.find_element(By.CSS_SELECTOR, f"{PANEL} .jp-OutputArea-output .widget-toggle-button")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", toggle)
        toggle.click()
        s2 = wait_for(browser, settled(s1, pressed=True), 60, "the Euclidean pools", lab,
                      tmp_path / "toggle.png")
        assert "pools: euclidean" in s2["info"] and anchor_of(s2) == anchor_of(s1)
        assert [r["title"] for r in s2["rows"]] == ["anchor", "NN^e positives", "Euclidean negatives"]
        pos2, w2 = ids_and_weights(s2["rows"][1])
        assert w2 and all(w == 1.0 for w in w2) and w2 != w1  # baseline positives weigh 1
        assert set(pos2).isdisjoint(pos1)  # NN^e and P+ = NN^m \ NN^e never share a member
        assert set(s2["rows"][1]["hashes"]) != set(s1["rows"][1]["hashes"])

        box = browser.find_element(By.CSS_SELECTOR, f"{PANEL} .jp-OutputArea-output .widget-vbox")
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", box)
        shot = tmp_path / "04_pool_inspector.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"\npool inspector screenshot: {shot} ({time.perf_counter() - t0:.0f} s)")
    finally:
        lab.shutdown_kernels()


LANGUAGE_SET = """
const m = window.jupyterapp.shell.currentWidget.context.model;
const info = m.getMetadata('language_info');
return Boolean(info && info.name === 'python');"""
SAVE = """
const done = arguments[arguments.length - 1];
const w = window.jupyterapp.shell.currentWidget;
w.context.save().then(() => done(!w.context.model.dirty), e => done(String(e)));"""


def test_opening_and_saving_a_notebook_leaves_its_file_unchanged(lab, browser, tmp_path):
    """JupyterLab sets the kernelspec and language_info of a notebook it opens (so the
    tab shows it modified: language_info is machine-specific and jupytext keeps it out
    of the file) and autosaves it; the saved file must be byte for byte the source."""
    import shutil
    source = list_notebooks(["03_figure3_galleries"])[0]
    shutil.copy(source, lab.root / source.name)
    browser.get(f"{lab.url}/lab/workspaces/save/tree/{source.name}?token={lab.token}")
    try:
        wait_for(browser, lambda d: d.execute_script(OPENED) == "notebook", 90,
                 f"{source.name} to open as a notebook", lab, tmp_path / "open.png")
        wait_for(browser, lambda d: d.execute_script(KERNEL_IDLE), 90, "the kernel", lab,
                 tmp_path / "kernel.png")
        wait_for(browser, lambda d: d.execute_script(LANGUAGE_SET), 30,
                 "the kernel's language_info", lab, tmp_path / "language.png")
        assert browser.execute_async_script(SAVE) is True
        assert (lab.root / source.name).read_bytes() == source.read_bytes()
    finally:
        lab.shutdown_kernels()


FIGURES = f"""return Array.from(document.querySelectorAll('{PANEL} .jp-OutputArea-output img'))
    .map(i => ({{png: i.src.startsWith('data:image/png;base64,'), w: i.naturalWidth,
                h: i.naturalHeight, bytes: i.src.length}}));"""


def test_walkthrough_renders_its_figures_in_jupyterlab(lab, browser, tmp_path):
    from selenium.webdriver.common.by import By
    t0 = time.perf_counter()
    name = lab.notebook("00_walkthrough", **smoke_values(lab))
    n_figures = (lab.root / name).read_text().count("viz.save_figure(")
    try:
        open_and_run_all(browser, lab, name, tmp_path, timeout=300)
        figures = wait_for(browser, lambda d: [f for f in d.execute_script(FIGURES)
                                               if f["png"] and f["w"] > 100 and f["h"] > 100] or None,
                           30, "the figures to load", lab, tmp_path / "figures.png")
        assert len(figures) >= n_figures >= 5, figures
        written = sorted(p.name for p in (lab.out / "figures").glob("00_*.png"))
        assert len(written) == n_figures, written
        first = browser.find_element(By.CSS_SELECTOR, f"{PANEL} .jp-OutputArea-output img")
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", first)
        shot = tmp_path / "00_walkthrough.png"
        assert browser.save_screenshot(str(shot))
        print(f"\nwalkthrough screenshot: {shot}: {len(figures)} PNG figures "
              f"({time.perf_counter() - t0:.0f} s)")
    finally:
        lab.shutdown_kernels()
