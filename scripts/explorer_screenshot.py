"""Drive the attention explorer in headless Chromium as a user would: start `mt.serve` with
the given checkpoints, open the page, type a sentence, wait until every model's translation
(and, where it has attention, its heatmap) appears, hover the first target piece, and save a
screenshot and a JSON report of what the page shows. With --search, it then opens the first
model's search view: the beam tree, re-ranked at --alpha with the slider, a node hovered (its
top-k next tokens and attention), and a node of step 2 clicked to re-decode from its prefix.

    python scripts/explorer_screenshot.py --checkpoint runs/rnn/checkpoints/best.pt \\
        --checkpoint runs/tf/checkpoints/best.pt --sentence "Zwei Hunde spielen im Schnee." \\
        --screenshot explorer.png

Needs Chromium and its driver (Debian: apt-get install chromium chromium-driver) and the
test extra (selenium). tests/test_server.py runs it on tiny models.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoints: list[str], port: int) -> subprocess.Popen:
    """mt.serve in a child process, once its /models answers."""
    command = [sys.executable, "-m", "mt.serve", f"checkpoints=[{','.join(checkpoints)}]"]
    server = subprocess.Popen([*command, f"port={port}"], cwd=REPO)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mt.serve exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=5)
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("mt.serve did not answer within 180 s")


def chromium(width: int, height: int) -> webdriver.Chrome:
    """The distribution's Chromium, headless, through its own chromedriver (nothing fetched)."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def page_report(driver: webdriver.Chrome) -> dict:
    """Per model: the translation shown, its n-best, heatmap cells, highlighted source pieces."""
    report = {}
    for section in driver.find_elements(By.CSS_SELECTOR, "section.model"):
        pieces = section.find_elements(By.CSS_SELECTOR, ".source .piece")
        report[section.get_attribute("data-model")] = {
            "translation": section.find_element(By.CSS_SELECTOR, ".translation").text,
            "nbest": [li.text for li in section.find_elements(By.CSS_SELECTOR, ".nbest li")],
            "heatmap_cells": len(section.find_elements(By.CSS_SELECTOR, ".heatmap td")),
            "highlighted_sources": sum(
                1
                for p in pieces
                if p.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
            ),
        }
    return report


def search_report(driver: webdriver.Chrome, wait: WebDriverWait, args) -> dict:
    """Drive the first model's search view: what its tree shows (and, given a reference, its
    verdict) before and after the slider moves to alpha, a hover and a click on a
    second-step node."""
    section = driver.find_element(By.CSS_SELECTOR, "section.model")
    section.find_element(By.CSS_SELECTOR, ".open-search").click()
    wait.until(lambda d: section.find_elements(By.CSS_SELECTOR, ".tree .node"))
    chosen = lambda: section.find_element(By.CSS_SELECTOR, ".chosen .best").text  # noqa: E731
    report = {"model": section.get_attribute("data-model"), "chosen": chosen()}
    alpha, reference, shot, width = args.alpha, args.reference, args.search_screenshot, args.width
    if reference:
        section.find_element(By.CSS_SELECTOR, "input.reference").send_keys(reference)
        section.find_element(By.CSS_SELECTOR, ".search-again").click()
        wait.until(lambda d: section.find_elements(By.CSS_SELECTOR, ".verdict"))
        report["verdict"] = section.find_element(By.CSS_SELECTOR, ".verdict").text
    report["nodes"] = len(section.find_elements(By.CSS_SELECTOR, ".tree .node"))
    slider = section.find_element(By.CSS_SELECTOR, "input.alpha")
    script = "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))"
    driver.execute_script(script, slider, str(alpha))
    report["reranked"] = chosen()
    first = section.find_element(By.CSS_SELECTOR, '.tree .node.kept[data-place="1:0"]')
    ActionChains(driver).move_to_element(first).perform()
    report["alternatives"] = len(section.find_elements(By.CSS_SELECTOR, ".alternatives li"))
    report["hover_rows"] = len(section.find_elements(By.CSS_SELECTOR, ".hover-info tbody tr"))
    if shot:  # the search as it chose, before a click forces a prefix
        full_page(driver, shot, width)
    second = section.find_elements(By.CSS_SELECTOR, '.tree .node.kept[data-place^="2:"]')[-1]
    report["clicked"] = second.get_attribute("data-place")
    second.click()
    wait.until(lambda d: section.find_elements(By.CSS_SELECTOR, ".forced, .search .error"))
    errors = section.find_elements(By.CSS_SELECTOR, ".search .error")
    if errors:
        raise SystemExit(f"the search view refused a clicked node: {errors[0].text}")
    wait.until(lambda d: section.find_elements(By.CSS_SELECTOR, ".chosen .best"))
    report["forced"] = section.find_element(By.CSS_SELECTOR, ".forced").text
    report["chosen_after_click"] = chosen()
    return report


def full_page(driver: webdriver.Chrome, path: Path, width: int) -> None:
    """A screenshot of the whole page, the window grown to its height."""
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(width, max(driver.get_window_size()["height"], height + 40))
    driver.save_screenshot(str(path))


def explore(args: argparse.Namespace, url: str) -> dict:
    driver = chromium(args.width, args.height)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, args.timeout)
        wait.until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.model")) == len(args.checkpoint)
        )
        box = driver.find_element(By.ID, "source")
        box.send_keys(args.sentence)
        driver.find_element(By.ID, "beam").clear()
        driver.find_element(By.ID, "beam").send_keys(str(args.beam))
        driver.find_element(By.ID, "go").click()
        wait.until(
            lambda d: all(
                s.find_elements(By.CSS_SELECTOR, ".translation, .error")
                for s in d.find_elements(By.CSS_SELECTOR, "section.model")
            )
        )
        for target in driver.find_elements(By.CSS_SELECTOR, ".target .piece:first-child"):
            ActionChains(driver).move_to_element(target).perform()  # the last one stays lit
        report = page_report(driver)
        if args.search:
            searched = search_report(driver, wait, args)
            report = {"models": report, "search": searched}
        if args.screenshot:
            full_page(driver, args.screenshot, args.width)
        return report
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--sentence", default="Zwei Hunde spielen im Schnee.")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--search", action="store_true", help="drive the search view too")
    parser.add_argument("--alpha", type=float, default=2.0, help="the slider's length penalty")
    parser.add_argument("--reference", help="a reference for the search view's verdict")
    parser.add_argument("--search-screenshot", type=Path, help="the search view, before the click")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    port = free_port()
    server = start_server(args.checkpoint, port)
    try:
        report = explore(args, f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.report:
        args.report.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
