"""Real browsers for the web page's lab tests, from Debian's packages: Chromium through its
chromedriver (Selenium), Firefox ESR through WebDriver BiDi, which Firefox serves itself (Debian
has no geckodriver). Neither may reach anything but 127.0.0.1: each is pointed at a proxy that is
not there, resolves no name, and has its background services (updates, telemetry, safe browsing,
experiments) switched off."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FIREFOX = "/usr/bin/firefox-esr"
#: Where the browsers' own requests would go: nothing listens on the discard port of loopback.
NOWHERE = "127.0.0.1:9"


def chrome(home: Path, size: str = "1280,720") -> Any:
    """A headless Chromium driven by Debian's chromedriver (nothing is downloaded); its viewport
    exactly ``size``; downloads go to ``home``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "chromium and chromium-driver are missing: run `bash scripts/install.sh --test`"
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={size}", f"--user-data-dir={home / 'chromium'}",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--disable-extensions",
                "--disable-domain-reliability", "--metrics-recording-only",
                f"--proxy-server={NOWHERE}",  # (loopback is never proxied)
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.add_experimental_option("prefs", {"download.default_directory": str(home),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        width, height = (int(x) for x in size.split(","))  # the page itself at that size
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    except BaseException:
        driver.quit()
        raise
    return driver


#: Firefox's preferences: no request leaves the machine, nothing runs in the background.
FIREFOX_PREFS = {
    # every request through a proxy that is not there, every name resolved to loopback
    "network.proxy.type": 1, "network.proxy.http": "127.0.0.1", "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": "", "network.proxy.allow_hijacking_localhost": False,
    "network.dns.native-is-localhost": True, "network.dns.forceResolve": "127.0.0.1",
    "network.trr.mode": 5, "network.dns.disablePrefetch": True,
    "network.predictor.enabled": False, "network.http.speculative-parallel-limit": 0,
    # and nothing that would try
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.update.auto": False, "app.update.enabled": False, "app.normandy.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False, "toolkit.telemetry.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False, "extensions.update.enabled": False,
    "browser.search.update": False, "services.settings.server": "http://127.0.0.1:9/",
    "browser.region.update.enabled": False, "browser.region.network.url": "",
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.newtabpage.enabled": False, "browser.startup.page": 0,
}


class Firefox:
    """A headless Firefox ESR spoken to over WebDriver BiDi (its ``--remote-debugging-port``):
    navigate, evaluate JavaScript, and the page's console errors."""

    def __init__(self, home: Path, size: tuple[int, int] = (1280, 720)) -> None:
        import websocket

        assert Path(FIREFOX).exists(), \
            "firefox-esr is missing: run `bash scripts/install.sh --test`"
        profile = home / "firefox"
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "user.js").write_text("".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items()))
        with socket.socket() as probe:  # a free port for its BiDi server
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.log = (home / "firefox.log").open("w")
        self.proc = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
             f"--remote-debugging-port={port}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"})
        self._id = 0
        self.errors: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            try:
                self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/session",
                                                      suppress_origin=True, timeout=60)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise AssertionError("firefox did not open its WebDriver BiDi port") from None
                time.sleep(0.1)
        try:
            self.call("session.new", capabilities={})
            self.call("session.subscribe", events=["log.entryAdded"])
            self.context = self.call("browsingContext.getTree")["contexts"][0]["context"]
            self.call("browsingContext.setViewport", context=self.context,
                      viewport={"width": size[0], "height": size[1]})
        except BaseException:
            self.close()
            raise

    def call(self, method: str, **params: Any) -> Any:
        """One BiDi command; its result (AssertionError with Firefox's message on an error)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == "log.entryAdded":
                entry = message["params"]
                if entry.get("level") == "error":
                    self.errors.append(entry.get("text", ""))
                continue
            if message.get("id") == self._id:
                if message.get("type") == "error":
                    raise AssertionError(f"firefox: {method}: {message.get('message')}")
                return message["result"]

    def navigate(self, url: str) -> None:
        self.call("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def js(self, expression: str) -> Any:
        """Evaluates JavaScript in the page (awaiting a promise); its value."""
        result = self.call("script.evaluate", expression=expression, awaitPromise=True,
                           target={"context": self.context})
        if result.get("type") == "exception":
            raise AssertionError(f"firefox: {expression}: {result['exceptionDetails']['text']}")
        return _value(result["result"])

    def screenshot(self, path: Path) -> None:
        data = self.call("browsingContext.captureScreenshot", context=self.context)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("browser.close")
        with contextlib.suppress(Exception):
            self.ws.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def _value(remote: dict) -> Any:
    """A BiDi remote value as Python (primitives and arrays of them)."""
    kind = remote.get("type")
    if kind in ("undefined", "null"):
        return None
    if kind == "array":
        return [_value(v) for v in remote.get("value", [])]
    return remote.get("value")
