"""The status page at / in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against the real ryu-manager with live
Mininet sessions: bridges, HA role, counters and rates, a session row of a
known inside host, then the sessions filtered by that host.  Saves the
screenshot in docs/status-page.png."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from helpers.peers import Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1 = "198.51.100.10"
TOKEN = "status-page-token-0123456789"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={"stats_interval": 1, "rest_token": TOKEN}) as running:
        yield running
    assert_left_nothing(running)


@pytest.fixture
def browser():
    """Headless Chromium (root needs --no-sandbox), its own profile, no network
    but loopback in use; always quit."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are missing: run scripts/setup.sh")
    with tempfile.TemporaryDirectory(prefix="ryu-snat-chromium-") as profile:
        opts = Options()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,1150", f"--user-data-dir={profile}",
                    "--no-first-run", "--disable-extensions"):
            opts.add_argument(arg)
        b = webdriver.Chrome(service=Service(driver), options=opts)
        b.set_page_load_timeout(30)
        try:
            yield b
        finally:
            b.quit()


def texts(browser, css: str) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, css)]


def session_rows(browser) -> list[tuple[str, str]]:
    """(inside host, row text) of each row of the sessions table."""
    return [(r.get_attribute("data-internal-ip"), r.text)
            for r in browser.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")]


def test_the_status_page_shows_live_sessions_and_filters_them(lab, browser):
    with Server(lab.host("o1"), "udp-server", 9400):
        for host, sport in (("h1", 5201), ("h1", 5202), ("h2", 5301)):
            got = client(lab.host(host), "udp-client", f"--sport {sport}", f"--to {O1}:9400",
                         "--count 2")
            assert got["replies"] == {f"{O1}:9400": 2}, got
    assert "0% packet loss" in lab.host("h1").cmd(f"ping -c 2 -W 2 {O1}")
    wait_for(lambda: len(lab.controller.get("/nat/connections")) == 4, 10,
             what="4 live sessions")

    browser.get(f"http://127.0.0.1:{lab.controller.rest_port}/")
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    wait.until(lambda b: int(b.find_element(By.TAG_NAME, "body").get_attribute("data-polls")
                             or 0) >= 2)       # two polls: the rates have numbers
    assert browser.title == "ryu-snat status"
    assert texts(browser, "#error") == [""]          # hidden: no error shown

    bridges = browser.find_elements(By.CSS_SELECTOR, "#bridges tbody tr")
    assert len(bridges) == 1
    cells = [td.text for td in bridges[0].find_elements(By.TAG_NAME, "td")]
    # profile, its dpid (unset in the lab), NAT address, s1, role, live, created
    assert cells == ["nat", "first to connect", "198.51.100.1", "0000000000000001",
                     "MASTER (alone)", "4", "4"], cells
    assert browser.find_element(By.ID, "ha").text == "HA: single controller (leads)"

    created = browser.find_element(By.CSS_SELECTOR, '#counters tr[data-counter="created"]')
    cells = [td.text for td in created.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "sessions created" and int(cells[1]) == 4, cells
    assert cells[2] != "…" and float(cells[2]) >= 0, cells     # a rate from two polls
    packet_ins = browser.find_element(By.CSS_SELECTOR, '#counters tr[data-counter="packet_ins"]')
    assert int(packet_ins.find_elements(By.TAG_NAME, "td")[1].text) >= 4

    rows = session_rows(browser)
    assert sorted(ip for ip, _ in rows) == ["10.0.0.11"] * 3 + ["10.0.0.12"]
    assert any("10.0.0.11:5201" in text and f"{O1}:9400" in text and "udp" in text
               for _, text in rows), rows
    assert any("icmp" in text for ip, text in rows if ip == "10.0.0.11"), rows
    browser.save_screenshot(str(SCREENSHOT))

    field = browser.find_element(By.NAME, "internal_ip")
    field.clear()
    field.send_keys("10.0.0.12")
    browser.find_element(By.CSS_SELECTOR, "#filter button").click()
    wait.until(lambda b: [ip for ip, _ in session_rows(b)] == ["10.0.0.12"])
    assert "10.0.0.12:5301" in session_rows(browser)[0][1]
    assert "internal_ip=10.0.0.12" in browser.current_url
    assert browser.find_element(By.ID, "page").text == "page 1, 1 session"

    field.clear()
    field.send_keys("not-an-address")
    browser.find_element(By.CSS_SELECTOR, "#filter button").click()
    wait.until(lambda b: b.find_element(By.ID, "filter-error").is_displayed())
    assert "internal_ip" in browser.find_element(By.ID, "filter-error").text
