// The walking skeleton, end to end: the release binary serves a server-rendered page that
// hydrates in Chromium, and a server function round-trips to the SQLite database.
import { test, expect } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Console, siteRoot } from './support/servers';
import { signedIn } from './support/flow';

let server: Console;

test.beforeAll(async () => {
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
});

test('health check answers with the version and a working database', async ({ request }) => {
  const res = await request.get(`${server.baseURL}/healthz`);
  expect(res.status()).toBe(200);
  const body = await res.json();
  expect(body.status).toBe('ok');
  expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
  expect(body.database.status).toBe('ok');
  expect(fs.existsSync(path.join(server.dataDir, 'offboard.db'))).toBe(true);
});

test('the page arrives rendered by the server, before any script runs', async ({ request }) => {
  const res = await request.get(`${server.baseURL}/`, { headers: { cookie: server.cookieHeader } });
  expect(res.status()).toBe(200);
  const html = await res.text();
  expect(html).toContain('<nav aria-label="Steps"');
  for (const step of ['Connect', 'Choose users', 'Preview', 'Run', 'History']) {
    expect(html).toContain(step);
  }
  // The bundle's names carry a hash of their content (make site).
  expect(html).toMatch(/\/pkg\/offboard\.[0-9a-f]{16}\.js/);
  expect(html).toMatch(/\/pkg\/offboard\.[0-9a-f]{16}\.css/);
  // Server-rendered means not hydrated yet.
  expect(html).toContain('data-hydrated="false"');
  // A page is never kept by the browser (it can carry people's emails), so a new build
  // shows at once too.
  expect(res.headers()['cache-control']).toBe('no-store');
});

test('the bundle is sent compressed when the browser accepts it, and kept for good', async ({ request }) => {
  const html = await (await request.get(`${server.baseURL}/`, { headers: { cookie: server.cookieHeader } })).text();
  const wasm = /href="(\/pkg\/offboard\.[0-9a-f]{16}\.wasm)"/.exec(html)?.[1];
  expect(wasm).toBeTruthy();
  const raw = fs.readFileSync(path.join(siteRoot, wasm!));
  for (const [accept, encoding] of [
    ['gzip, deflate, br', 'br'],
    ['gzip', 'gzip'],
    ['identity', undefined],
  ] as const) {
    const res = await request.get(`${server.baseURL}${wasm}`, { headers: { 'Accept-Encoding': accept } });
    expect(res.status()).toBe(200);
    expect(res.headers()['content-encoding']).toBe(encoding);
    expect(res.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.headers()['content-type']).toBe('application/wasm');
    // Whatever travelled, the browser ends up with the file as built.
    expect(Buffer.compare(await res.body(), raw)).toBe(0);
  }
});

test('the page hydrates and a server function round-trips to the database', async ({ page }) => {
  await signedIn(page, server.baseURL);
  await page.goto(server.baseURL);
  await expect(page.getByRole('heading', { name: 'Offboard', level: 1 })).toBeVisible();
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  // The start screen speaks to an admin, not about the console's database.
  await expect(page.getByText('No site is connected yet.')).toBeVisible();
  await expect(page.getByText(/migrations applied|SQLite/)).toHaveCount(0);

  // Only the WASM can send this request: a navigation inside the page, no reload, whose
  // saved connection (none yet) is read from the database through a server function.
  const call = page.waitForResponse((r) => r.url().includes('/api/connection'));
  await page.getByRole('navigation', { name: 'Steps' }).getByRole('link', { name: 'Connect' }).click();
  const res = await call;
  expect(res.status()).toBe(200);
  await expect(page.getByLabel('Site address')).toHaveValue('');
});

test('navigation between the steps works without a full reload', async ({ page }) => {
  await signedIn(page, server.baseURL);
  await page.goto(server.baseURL);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  // A mark on the window survives navigation inside the app and is lost on a reload.
  await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
  const steps = page.getByRole('navigation', { name: 'Steps' });
  await steps.getByRole('link', { name: 'Choose users' }).click();
  await expect(page).toHaveURL(/\/choose$/);
  await expect(page.getByRole('heading', { level: 1 }).first()).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
  // History is served whole by the server: its link leaves the app (a reload, by design).
  await steps.getByRole('link', { name: 'History' }).click();
  await expect(page).toHaveURL(/\/history$/);
  await expect(page.getByRole('heading', { name: 'History', level: 1 })).toBeVisible();
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'static');
  expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBeUndefined();
});

test('an unknown address says so in plain words', async ({ page }) => {
  await signedIn(page, server.baseURL);
  await page.goto(`${server.baseURL}/no-such-page`);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
});
