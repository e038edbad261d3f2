"""A real browser for tests: Debian's headless Chromium driven through the DevTools protocol over a pipe
(`--remote-debugging-pipe`: commands on file descriptor 3, answers on 4, NUL-separated JSON), with the standard
library alone."""

import base64
import json
import os
import shutil
import subprocess
import time


class Browser:
    """One headless Chromium page: `open(url)`, `evaluate(js)`, `wait_for(js)`, `wait_for_drawn_images(selector,
    count)`, `screenshot(path)`, `close()`."""

    def __init__(self, user_data_dir, size=(1280, 900)):
        executable = shutil.which("chromium")
        if executable is None:
            raise FileNotFoundError("chromium is not installed (Debian package chromium)")
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()

        def descriptors():  # the browser reads commands on 3 and writes answers on 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}", f"--window-size={size[0]},{size[1]}",
             "about:blank"], preexec_fn=descriptors, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.session = b"", 0, None
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.command("Page.enable")
        self.command("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                     mobile=False)

    def command(self, method, **params):
        """Send a DevTools command (to the page once attached) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._answers, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url):
        self.command("Page.navigate", url=url)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=60):
        """Poll until a JavaScript expression is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"{expression} stayed false for {timeout} s")

    def drawn_images(self, selector):
        """How many of the images `selector` matches are loaded, decoded and not blank (their pixels, drawn on a
        canvas, vary), and how many it matches: what a person would see, not just the elements."""
        return self.evaluate(f"""Promise.all([...document.querySelectorAll({json.dumps(selector)})].map(
            image => image.decode().then(() => {{
                const canvas = document.createElement('canvas');
                [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
                if (!canvas.width || !canvas.height) return false;
                const context = canvas.getContext('2d');
                context.drawImage(image, 0, 0);
                const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
                let low = 255, high = 0;
                for (let i = 0; i < pixels.length; i += 4) {{ low = Math.min(low, pixels[i + 1]);
                                                              high = Math.max(high, pixels[i + 1]); }}
                return high - low > 8;
            }}, () => false))).then(drawn => [drawn.filter(Boolean).length, drawn.length])""")

    def wait_for_drawn_images(self, selector, count, timeout=60):
        """Wait until `count` images match `selector`, every one drawn (`drawn_images`); raises naming how many
        were drawn otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            drawn, found = self.drawn_images(selector)
            if drawn == found == count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{drawn} of the {found} images {selector} were drawn after {timeout} s "
                                   f"({count} expected)")
            time.sleep(0.25)

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.command("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self):
        self.process.kill()
        self.process.wait()
        os.close(self._commands)
        os.close(self._answers)
