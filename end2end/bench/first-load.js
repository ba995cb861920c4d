// Measures the first load of /preview in Chromium: bytes transferred (HTML, JS, WASM, CSS) and
// the time until the page is interactive (the app sets data-hydrated="true" once the WASM has
// hydrated it), each run with a cold cache. Not a test: it asserts nothing; docs/benchmarks.md
// records its figures.
// Usage (from end2end/): OFFBOARD_BIN=… OFFBOARD_SITE_ROOT=… node bench/first-load.js
//   RUNS=7 by default; SLOW=1 adds a 4x slower CPU and a 10 Mbit/s, 40 ms link.
const { chromium } = require('@playwright/test');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

async function startConsole() {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-bench-'));
  const child = spawn(process.env.OFFBOARD_BIN, ['serve'], {
    env: { ...process.env, OFFBOARD_ADDR: `127.0.0.1:${port}`, OFFBOARD_DATA_DIR: dataDir, LEPTOS_SITE_ROOT: process.env.OFFBOARD_SITE_ROOT },
    stdio: 'ignore',
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return { base, child };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the console did not start');
}

async function main() {
  const runs = Number(process.env.RUNS ?? 7);
  const slow = process.env.SLOW === '1';
  const { base, child } = await startConsole();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
  const times = [];
  let bytes = {};
  try {
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      if (slow) {
        const cdp = await context.newCDPSession(page);
        await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
        await cdp.send('Network.enable');
        await cdp.send('Network.emulateNetworkConditions', {
          offline: false,
          latency: 40,
          downloadThroughput: (10 * 1024 * 1024) / 8,
          uploadThroughput: (5 * 1024 * 1024) / 8,
        });
      }
      await page.goto(`${base}/preview`);
      await page.waitForFunction(() => document.querySelector('.app')?.getAttribute('data-hydrated') === 'true', null, { timeout: 60_000 });
      times.push(await page.evaluate(() => performance.now()));
      bytes = await page.evaluate(() => {
        const out = { html: performance.getEntriesByType('navigation')[0].transferSize };
        for (const e of performance.getEntriesByType('resource')) out[e.name.split('/').pop().split('?')[0]] = e.transferSize;
        return out;
      });
      await context.close();
    }
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
  times.sort((a, b) => a - b);
  const total = Object.values(bytes).reduce((a, b) => a + b, 0);
  console.log(JSON.stringify({ slow, runs, median_ms_to_interactive: Math.round(times[Math.floor(times.length / 2)]), min_ms: Math.round(times[0]), max_ms: Math.round(times[times.length - 1]), bytes, total_bytes: total }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
