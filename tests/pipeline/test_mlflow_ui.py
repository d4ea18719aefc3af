"""The MLflow UI as a person uses it, in headless Chromium (Debian's chromium + chromedriver, via selenium).

A tiny real sweep (three archs, two epochs, on the shared small pipeline's
labels) fills a SQLite store; ``mlflow ui`` serves it on 127.0.0.1 as
``make ui`` does.  The browser opens the experiment's runs, expands the sweep's
parent run, finds the three arch runs, selects them, opens the comparison and
reads each run's ``val_plcc`` off the page (checked against the store), then
opens the ``val_plcc``-per-epoch chart, and finally the Model Registry page of
the student ``tinyvmaf model promote`` registered.  Screenshots of each step land in
``reports/ui/`` (``$TINYVMAF_UI_SHOTS`` overrides).  Any missing run, metric or
page fails the test with the page's screenshot kept.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from project import REPO, run

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow

ARCHS = ("mlp_32x2", "mlp_64x2", "mlp_64x3")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 60  # seconds for any one page state


def shots_dir() -> Path:
    out = Path(os.environ.get("TINYVMAF_UI_SHOTS") or REPO / "reports" / "ui")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory: pytest.TempPathFactory, pipeline: Pipeline) -> Path:
    """``python train.py -m arch=mlp_32x2,mlp_64x2,mlp_64x3 train.epochs=2`` into a fresh SQLite store."""
    work = tmp_path_factory.mktemp("ui-sweep")
    db = work / "mlflow.db"
    cmd = [sys.executable, str(pipeline.path / "train.py"), "-m", f"arch={','.join(ARCHS)}", "train.epochs=2"]
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    run([*cmd, f"+labels={pipeline.labels}", f"+samples={pipeline.samples}"], work, store, timeout=300)
    # ... and the pipeline's gated model, registered in the same store (`tinyvmaf model promote`).
    project = pipeline.copy(work / "A").path  # the promotion writes into the project
    out = run(["tinyvmaf", "model", "promote"], project, store, timeout=300)
    assert "registered vmaf_tiny_fr version 1 -> @champion" in out, out
    return db


@pytest.fixture
def browser() -> Iterator:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        msg = f"{missing} not installed: run scripts/install-system-deps.sh (make system-deps)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


#: The compare page's metric table is two virtualised grids side by side: names, then values
#: (one column per run, in the order of the page's ``runs`` parameter). Returns the row's texts.
METRIC_ROW_JS = """
const name = arguments[0];
const link = [...document.querySelectorAll('a[title="Plot chart"]')].find(a => a.textContent.trim() === name);
if (!link) return null;
const top = link.parentElement.style.top;
const grids = [...document.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer')];
const i = grids.findIndex(g => g.contains(link));
if (i < 0 || i + 1 >= grids.length) return null;
return [...grids[i + 1].children]
  .filter(d => d.style.top === top)
  .sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left))
  .map(d => d.textContent.trim());
"""


def test_ui_shows_sweep_runs_and_val_plcc(sweep_db: Path, browser, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from servers import mlflow_server

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep_db}")
    exp = client.get_experiment_by_name("tinyvmaf")
    assert exp is not None
    expected = {r.info.run_name: r.data.metrics["val_plcc"] for r in client.search_runs([exp.experiment_id])
                if r.info.run_name in ARCHS}  # fmt: skip
    assert sorted(expected) == sorted(ARCHS)

    shots = shots_dir()
    d = browser

    def body() -> str:
        return d.find_element(By.TAG_NAME, "body").text

    def wait_for(what: str, cond, shot: str) -> None:
        try:
            WebDriverWait(d, WAIT).until(lambda _: cond())
        except TimeoutException:
            d.save_screenshot(str(shots / f"FAILED-{shot}.png"))
            pytest.fail(f"MLflow UI: {what} did not appear within {WAIT}s (screenshot FAILED-{shot}.png)")

    with mlflow_server(f"sqlite:///{sweep_db}", tmp_path, ui=True) as url:
        # 1. The experiment's training runs: the sweep's parent, expanded to its three arch runs.
        d.get(f"{url}/#/experiments/{exp.experiment_id}/runs")
        wait_for("the experiment's runs table", lambda: "sweep" in body() and "matching runs" in body(), "runs")
        for close in d.find_elements(By.CSS_SELECTOR, 'button[aria-label="Close"]'):  # the assistant side panel
            if close.is_displayed():
                close.click()
        d.find_element(By.CSS_SELECTOR, 'button[data-component-id*="runnamecellrenderer"]').click()
        wait_for("the three sweep runs", lambda: all(a in body() for a in ARCHS), "runs")
        d.save_screenshot(str(shots / "1-experiment-runs.png"))

        # 2. Select the three arch runs by name and open the comparison.
        run_ids = {}
        for arch in ARCHS:
            link = d.find_element(By.XPATH, f'//a[.//span[normalize-space()="{arch}"]]')
            run_ids[arch] = link.get_attribute("href").rsplit("/", 1)[-1]
            row = f'.ag-pinned-left-cols-container [role=row][row-id="{run_ids[arch]}"] .ag-checkbox-input-wrapper'
            d.find_element(By.CSS_SELECTOR, row).click()
        compare = [b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip().startswith("Compare")]
        assert compare, "no Compare button after selecting the three runs"
        compare[0].click()
        wait_for("the run comparison", lambda: "Comparing 3 Runs" in body() and "val_plcc" in body(), "compare")
        wait_for("the val_plcc row", lambda: d.execute_script(METRIC_ROW_JS, "val_plcc"), "compare")
        d.save_screenshot(str(shots / "2-compare-runs.png"))

        # 3. Each run's val_plcc as the page shows it (rounded for display) against the store.
        query = urllib.parse.parse_qs(urllib.parse.urlparse(d.current_url.replace("#/", "")).query)
        order = json.loads(query["runs"][0])
        assert sorted(order) == sorted(run_ids.values())
        shown = d.execute_script(METRIC_ROW_JS, "val_plcc")
        assert len(shown) == 3, shown
        name_of = {rid: arch for arch, rid in run_ids.items()}
        for rid, text in zip(order, shown, strict=True):
            arch = name_of[rid]
            assert abs(float(text) - expected[arch]) < 1e-3, (arch, text, expected[arch])

        # 4. The val_plcc curves, one point per epoch per run.
        d.execute_script(
            "[...document.querySelectorAll('a[title=\"Plot chart\"]')]"
            ".find(a => a.textContent.trim() === 'val_plcc').click()"
        )
        wait_for(
            "the val_plcc chart", lambda: "metric" in d.current_url and d.find_elements(By.CSS_SELECTOR, "svg"), "chart"
        )
        wait_for("the chart's three runs", lambda: all(a in body() for a in ARCHS), "chart")
        d.save_screenshot(str(shots / "3-val_plcc-chart.png"))
        # The chart's table has each run's latest val_plcc at full precision, at the last epoch (step 1).
        text = body()
        for arch, value in expected.items():
            assert f"{value!r} (step=1)" in text, (arch, value)

        # 5. The Model Registry: the registered student, its version 1 carrying the champion alias.
        d.get(f"{url}/#/models/vmaf_tiny_fr")
        wait_for("the registered model's page", lambda: "vmaf_tiny_fr" in body() and "Version 1" in body(), "model")
        wait_for("the champion alias", lambda: "champion" in body(), "model")
        d.save_screenshot(str(shots / "4-registered-model.png"))

    for name in ("1-experiment-runs.png", "2-compare-runs.png", "3-val_plcc-chart.png"):
        assert (shots / name).stat().st_size > 10_000, name
