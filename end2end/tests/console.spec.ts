// The admin's path end to end, in Chromium, against the release binary and the Stack-shaped
// fault server, a FAKE Stack site (a test double; tests/scim2.spec.ts walks the same path
// against the real scim2-server): connect (wrong token, then right), upload a CSV, preview, type the phrase,
// watch the live rows, download the failures report; then pick a deactivated user and delete it;
// last, the Connect screen's three forms (save, check the saved connection, remove the token).
import { test, expect, Page } from '@playwright/test';
import * as fs from 'node:fs';
import { Console } from './support/servers';
import { FaultServer, TOKEN, connect as connectTo, confirmRun, open as openAt, connected, liveRows, pickedCount, runState } from './support/flow';

let server: Console;
let fault: FaultServer;

test.beforeAll(async () => {
  // 30 users; every 5th is deactivated (user5, user10, …).
  fault = await FaultServer.start(['--users', '30', '--deactivated-every', '5']);
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  fault?.stop();
});

const open = (page: Page, url: string) => openAt(page, server.baseURL, url);
const connect = (page: Page, token: string) => connectTo(page, server.baseURL, fault, token);
const faultState = () => fault.state();

/** Starts the run with the typed phrase and waits until it has finished. */
async function confirmAndRun(page: Page, buttonName: string): Promise<string> {
  const jobId = await confirmRun(page, buttonName);
  await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
  return jobId;
}

test('a wrong token is reported in plain words and never shown back', async ({ page }) => {
  await connect(page, 'wrong-token-zzzz');
  const alert = page.getByRole('alert');
  await expect(alert).toContainText(/token/i);
  await expect(page.getByLabel('SCIM token')).toHaveValue('');
  expect(await page.content()).not.toContain('wrong-token-zzzz');
});

test('upload a CSV, preview, confirm, watch the run, download the failures', async ({ page }) => {
  await connect(page, TOKEN);
  await expect(connected(page)).toBeVisible();
  await expect(page.getByLabel('SCIM token')).toHaveAccessibleDescription(new RegExp(`Token saved, ending …${TOKEN.slice(-4)}`));
  expect(await page.content()).not.toContain(TOKEN);

  await open(page, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('email\nuser1@example.com\nuser2@example.com\nnobody@example.com\n'),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.getByRole('button', { name: /2\s*will be deleted/ })).toBeVisible();
  await page.getByRole('button', { name: /1\s*not found/ }).click();
  await expect(page.getByRole('table')).toContainText('nobody@example.com');
  await expect(page.getByRole('table')).not.toContainText('user1@example.com');
  await expect(page.getByText(/identity provider/)).toBeVisible();

  const jobId = await confirmAndRun(page, 'Delete 2 users');
  await expect(liveRows(page)).toContainText('user1@example.com');
  await expect(page.getByRole('progressbar', { name: 'Users processed' })).toBeVisible();
  expect((await faultState()).deleted).toEqual(expect.arrayContaining(['1001', '1002']));

  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: /Failures \(JSON/ }).click();
  const file = await (await download).path();
  const failures = JSON.parse(fs.readFileSync(file!, 'utf8'));
  expect(JSON.stringify(failures)).toContain('nobody@example.com');

  // From the run, by the steps: History is served whole by the server (the app's router must
  // let the browser load it, not look for it among its own screens).
  await page.getByRole('navigation', { name: 'Steps' }).getByRole('link', { name: 'History' }).click();
  await page.waitForURL(/\/history$/);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'static');
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
  await expect(page.getByRole('link', { name: /Open the run of/ }).first()).toHaveAttribute('href', `/run?id=${jobId}`);
});

test('pick a deactivated user from the list and delete it', async ({ page }) => {
  await connect(page, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, '/choose');
  await page.getByRole('button', { name: 'Show deactivated users' }).click();
  await expect(pickedCount(page)).toContainText('0 selected of 6 deactivated users');
  await page.getByLabel('Search by name, email or account ID').fill('user15@');
  await page.getByRole('button', { name: 'Select all' }).click();
  await page.getByLabel('Search by name, email or account ID').fill('');
  await page.getByRole('checkbox', { name: 'Select User 5', exact: true }).check();
  await expect(pickedCount(page)).toContainText('2 selected');
  await page.getByRole('button', { name: 'Select none' }).click();
  await expect(pickedCount(page)).toContainText('0 selected');
  await page.getByRole('checkbox', { name: 'Select User 5', exact: true }).check();
  await page.getByRole('button', { name: 'Preview selected' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await confirmAndRun(page, 'Delete 1 user');
  expect((await faultState()).deleted).toContain('1005');
  expect((await faultState()).deleted).not.toContain('1015');
});

test('the Connect forms: save keeps what was typed, a blank token keeps the saved one, check again, remove the token', async ({ page }) => {
  await connect(page, TOKEN);
  await expect(connected(page)).toBeVisible();
  await expect(page.getByLabel('SCIM token')).toHaveValue('');

  // Every field reached the server: a fresh page shows them saved.
  await open(page, '/connect');
  await expect(page.getByLabel('Site address')).toHaveValue(fault.base);
  await expect(page.getByLabel('SCIM base URL')).toHaveValue(`${fault.base}/v2`);
  await expect(page.getByLabel('Protected email')).toHaveValue('operator@example.com');
  await expect(page.getByLabel('SCIM token')).toHaveAccessibleDescription(new RegExp(`Token saved, ending …${TOKEN.slice(-4)}`));

  // Saved again with the token box left empty: the email changes, the token stays.
  await page.getByLabel('Protected email').fill('second@example.com');
  await page.getByRole('button', { name: 'Save and check' }).click();
  await expect(connected(page)).toBeVisible();
  await open(page, '/connect');
  await expect(page.getByLabel('Protected email')).toHaveValue('second@example.com');
  await expect(page.getByLabel('SCIM token')).toHaveAccessibleDescription(new RegExp(`Token saved, ending …${TOKEN.slice(-4)}`));

  // Check the saved connection without saving anything.
  await expect(connected(page)).toHaveCount(0);
  await expect(page.getByRole('alert')).toHaveCount(0);
  await page.getByRole('button', { name: 'Check the saved connection' }).click();
  await expect(connected(page)).toBeVisible();
  await expect(connected(page)).toContainText(/lists \d+ users/);

  // Remove the token: the page says so, and a check now says what is missing.
  await page.getByRole('button', { name: 'Remove token' }).click();
  await expect(page.getByLabel('SCIM token')).toHaveAccessibleDescription(/No token saved/);
  await expect(page.getByRole('button', { name: 'Remove token' })).toHaveCount(0);
  await page.getByRole('button', { name: 'Check the saved connection' }).click();
  await expect(page.getByRole('alert')).toBeVisible();
  expect(await page.content()).not.toContain(TOKEN);
});
