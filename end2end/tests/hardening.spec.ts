// The console's security headers in real Chromium, against the release binary and the
// Stack-shaped fault server (a FAKE Stack site, a test double): every page sends a Content-Security-Policy with a fresh nonce,
// the pages still hydrate and work under it through a whole run (the outcome bar's inline
// widths included), Chromium reports no CSP violation anywhere, and the console refuses to
// be framed. A cross-site form post from another origin is refused and starts nothing.
import { test, expect, Page } from '@playwright/test';
import * as http from 'node:http';
import { Console, freePort } from './support/servers';
import { FaultServer, TOKEN, connect, confirmRun, open, connected, runState } from './support/flow';

let server: Console;
let fault: FaultServer;

test.beforeAll(async () => {
  fault = await FaultServer.start(['--users', '10']);
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  fault?.stop();
});

/** Collects every CSP violation Chromium reports on the page: the DOM event (from an init
 * script, which Playwright injects outside the page's CSP) and the console's error lines. */
async function watchViolations(page: Page): Promise<string[]> {
  const seen: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (execute|load|apply|connect|frame)/i.test(m.text())) {
      seen.push(`console: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
  await page.exposeFunction('__reportViolation', (text: string) => seen.push(text));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __reportViolation: (t: string) => void }).__reportViolation(
        `violation: ${e.violatedDirective} ${e.blockedURI}`,
      );
    });
  });
  return seen;
}

test('every page sends a CSP with a fresh nonce and hydrates under it, with no violation', async ({ page }) => {
  const violations = await watchViolations(page);
  const nonces = new Set<string>();
  page.on('response', (r) => {
    const html = (r.headers()['content-type'] ?? '').startsWith('text/html');
    if (r.request().resourceType() === 'document' && html) {
      const csp = r.headers()['content-security-policy'] ?? '';
      expect(csp, r.url()).toContain("frame-ancestors 'none'");
      expect(csp, r.url()).not.toMatch(/script-src[^;]*'unsafe-inline'/);
      const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
      expect(nonce, `${r.url()}: ${csp}`).toBeTruthy();
      nonces.add(nonce!);
      expect(r.headers()['x-frame-options']).toBe('DENY');
      expect(r.headers()['cache-control']).toBe('no-store');
    }
  });

  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, server.baseURL, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('email\nuser1@example.com\nuser2@example.com\nnobody@example.com\n'),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await confirmRun(page, 'Delete 2 users');
  await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
  // The outcome bar sets its widths with inline style attributes, which the policy allows.
  await expect(page.getByRole('progressbar', { name: 'Users processed' })).toBeVisible();
  for (const url of ['/', '/history', '/no-such-page']) {
    await open(page, server.baseURL, url);
  }
  expect(nonces.size, 'a new nonce for every page').toBeGreaterThanOrEqual(5);
  expect(violations).toEqual([]);
});

test('another site can neither frame the console nor post to it', async ({ page }) => {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  // A hostile page on another origin (a local port: the browser treats it as another site).
  const port = await freePort();
  const target = server.baseURL;
  const evil = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>evil</title>
      <iframe id="framed" src="${target}/connect"></iframe>
      <form id="forged" method="post" action="${target}/api/forget_token"></form>`);
  });
  await new Promise<void>((r) => evil.listen(port, 'localhost', () => r()));
  try {
    const framedAnswer = page.waitForResponse((r) => r.url() === `${target}/connect`);
    await page.goto(`http://localhost:${port}/`);
    // The console's page did arrive in the frame, with the headers that forbid framing…
    const framedRes = await framedAnswer;
    expect(framedRes.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(framedRes.headers()['x-frame-options']).toBe('DENY');
    // …and Chromium did not render it: no frame shows the console's heading.
    let framedHeadings = 0;
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      // A frame Chromium detached meanwhile has nothing to count; any other error is a
      // failure, not a zero.
      framedHeadings += await frame
        .getByRole('heading', { name: 'Connect' })
        .count()
        .catch((error) => {
          if (frame.isDetached()) return 0;
          throw error;
        });
    }
    expect(framedHeadings).toBe(0);

    const answer = page.waitForResponse((r) => r.url().endsWith('/api/forget_token'));
    await page.evaluate(() => (document.getElementById('forged') as HTMLFormElement).submit());
    const res = await answer;
    expect(res.status()).toBe(403);
    expect(await res.text()).toContain('sent by another web site');
  } finally {
    evil.close();
  }
  // The saved token is still there.
  const view = await (await fetch(`${server.baseURL}/api/connection`, {
    method: 'POST',
    headers: { cookie: server.cookieHeader },
  })).json();
  expect(view.token_saved).toBe(true);
  expect(view.token_hint).toBe(TOKEN.slice(-4));
});
