// The Audit page as an admin meets it after a run: reached from the header (the server renders
// it whole, without script), it lists the run (confirmed by the email saved on Connect, ended
// by Offboard) newest first, filters by kind and by day with a plain form, downloads the same entries as CSV, reads clearly at 1280 and
// 390 px and passes axe-core. SCIM side: the project's Stack-shaped fault server (a test
// double); console: the real release binary.
import { test, expect } from '@playwright/test';
import * as fs from 'node:fs';
import { Console } from './support/servers';
import { FaultServer, TOKEN, checkScreen, confirmRun, connect, open, bodyRows, connected, runState } from './support/flow';

let server: Console;
let fault: FaultServer;
// The UTC day before the console wrote its first entry: with the day after its last, a range
// that holds every entry even when the run crosses midnight.
let firstDay: string;

test.beforeAll(async () => {
  fault = await FaultServer.start(['--users', '30']);
  firstDay = new Date().toISOString().slice(0, 10);
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  fault?.stop();
});

test('the audit page lists a run, filters it and downloads it as CSV', async ({ page }) => {
  test.setTimeout(120_000);
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();

  await open(page, server.baseURL, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('Email\nuser20@example.com\nuser21@example.com\n'),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  const jobId = await confirmRun(page, 'Delete 2 users');
  await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });

  // From the header, as an admin finds it.
  await page.getByRole('link', { name: 'Audit trail' }).click();
  await page.waitForURL(/\/audit$/);
  // A record, not a tool: the server renders it whole, with no app, only the few lines that
  // show its times in the reader's zone.
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'static');
  expect(await page.locator('script[src]:not([src="/local-times.js"]), link[rel=modulepreload]').count()).toBe(0);
  const table = page.getByRole('table', { name: 'Audit entries, newest first' });
  const rows = bodyRows(table);
  // The run's end may be written a moment after the page says Finished.
  await expect(async () => {
    await page.reload();
    await expect(rows.first()).toContainText('Run ended', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  // The run, its preview and connection, and the first owner joining the team at setup.
  await expect(rows).toHaveCount(5);
  await expect(rows.nth(0)).toContainText('Offboard');
  await expect(rows.nth(0)).toContainText(jobId);
  // Details in words, not JSON (the CSV keeps the JSON).
  await expect(rows.nth(0)).toContainText('State: finished');
  await expect(rows.nth(0)).toContainText('Counts: 2 deleted');
  await expect(rows.nth(3)).toContainText('Token replaced: yes');
  await expect(table).not.toContainText('{"');
  // The run an entry is about is a link to its page.
  await expect(rows.nth(0).getByRole('link', { name: jobId })).toHaveAttribute('href', `/run?id=${jobId}`);
  await expect(rows.nth(1)).toContainText('Run confirmed');
  // Named by who is signed in, not by the email typed on Connect.
  await expect(rows.nth(1)).toContainText('Olive Owner <olive@offboard.test>');
  await expect(rows.nth(2)).toContainText('Preview made');
  await expect(rows.nth(3)).toContainText('Connection saved');
  await expect(rows.nth(4)).toContainText('Member added');
  await expect(table).not.toContainText(TOKEN);
  await checkScreen(page, '20-audit');

  // Filter by kind (a plain GET form): only the confirmation.
  await page.getByLabel('What').selectOption('run_confirmed');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForURL(/action=run_confirmed/);
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText(jobId);

  // By day: the days (UTC) the entries were written in have everything, a day long past has
  // nothing. Both ends are read from the clock around the entries, not assumed to be one day.
  const lastDay = new Date().toISOString().slice(0, 10);
  await open(page, server.baseURL, `/audit?from=${firstDay}&to=${lastDay}`);
  await expect(rows).toHaveCount(5);
  await open(page, server.baseURL, '/audit?to=2001-01-01');
  await expect(page.getByText('No entries match.', { exact: true })).toBeVisible();

  // The CSV: the same entries, with the page's filter.
  await open(page, server.baseURL, '/audit?action=run_ended');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download these entries (CSV)' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('audit.csv');
  const csv = fs.readFileSync((await download.path())!, 'utf8');
  const lines = csv.trim().split(/\r?\n/);
  expect(lines[0]).toBe('"seq","at (UTC)","actor","action","target","details"');
  expect(lines).toHaveLength(2);
  expect(lines[1]).toContain('"run_ended"');
  expect(lines[1]).toContain(jobId);
  expect(csv).not.toContain(TOKEN);
});
