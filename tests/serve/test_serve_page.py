"""The page at / in a real browser: Debian's chromium and chromedriver through Selenium.

Skips, saying why, where /usr/bin/chromium or chromedriver is absent (``.ci/run``
installs both).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.xdist_group("serve"), pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (the test extra)")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not CHROMIUM.exists() or not Path(driver_path).exists():
        pytest.skip("no browser: /usr/bin/chromium and chromedriver are needed "
                    "(apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(script))


def test_page_draws_six_faces_of_the_group_photo(browser, faces_server, shared, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(faces_server.url + "/")
    _wait(browser, "return document.body.dataset.ready === '1'")
    browser.find_element(By.ID, "file").send_keys(str(shared / "images" / "group_t1.jpg"))
    _wait(browser, "return document.getElementById('status').dataset.count !== undefined")
    drawn = browser.execute_script("return window.viewfinder.drawn")
    assert browser.find_element(By.ID, "status").get_attribute("data-count") == "6"
    assert drawn == {"boxes": 6, "landmarks": 6 * 106, "keypoints": 6 * 5}
    # the boxes are on the canvas: pure green pixels (the photo has almost none)
    green = browser.execute_script("""
        const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 40 && d[i+1] > 215 && d[i+2] < 40) n++;
        return [n, c.width, c.height];""")
    assert green[1:] == [1280, 886] and green[0] > 6 * 200, green
    record = browser.execute_script("return JSON.parse(document.getElementById('json').textContent)")
    assert len(record["detections"]) == 6 and record["width"] == 1280
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_page_webcam_streams_frames_over_the_websocket(browser, faces_server):
    from selenium.webdriver.common.by import By

    browser.get(faces_server.url + "/")
    _wait(browser, "return document.body.dataset.ready === '1'")
    browser.find_element(By.ID, "webcam").click()
    # chromium's fake camera: frames go out, answers come back, fps and latency show
    _wait(browser, "return parseFloat(document.getElementById('fps').textContent) > 0", 60)
    latency = browser.find_element(By.ID, "latency").text
    assert float(latency) > 0
    record = browser.execute_script("return window.viewfinder.record")
    assert record is not None and record["width"] > 0 and "detections" in record
    browser.find_element(By.ID, "webcam").click()  # stop
