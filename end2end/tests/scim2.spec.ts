// The admin's whole path in Chromium against a REAL SCIM server, PyPI `scim2-server` (no fake
// anywhere here): connect the console to it, upload a CSV, see the preview resolve each address
// to its account ID, type the phrase, run, watch it finish, download every report and read it;
// then ask scim2-server itself which users are left: exactly the confirmed ones are gone.
// scim2-server speaks plain http on loopback, which the test consoles allow
// (OFFBOARD_ALLOW_HTTP_LOOPBACK_SITES, support/servers.ts).
import { test, expect, Page } from '@playwright/test';
import * as fs from 'node:fs';
import { Console } from './support/servers';
import { Scim2Server } from './support/scim2';
import { bodyRows, confirmRun, connect, connected, open, runState } from './support/flow';

const TOKEN = 'e2e-scim2-token-7d8e9f0a1b';

let server: Console;
let scim: Scim2Server;
/** The ids scim2-server gave user0 … user11 (user{i}@corp.test). */
let ids: string[];

test.beforeAll(async () => {
  scim = await Scim2Server.start(TOKEN);
  ids = await scim.seed(
    Array.from({ length: 12 }, (_, i) => ({
      userName: `user${i}`,
      emails: [{ value: `user${i}@corp.test`, primary: true }],
      active: true,
    })),
  );
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  scim?.stop();
});

/** Downloads the run's report behind the link named `name`; its text. */
async function report(page: Page, name: string | RegExp): Promise<string> {
  const download = page.waitForEvent('download');
  await page.getByRole('navigation', { name: 'Reports' }).getByRole('link', { name }).click();
  const file = await (await download).path();
  return fs.readFileSync(file!, 'utf8');
}

test('connect to scim2-server, preview a CSV with resolved IDs, run it, read the reports: exactly the confirmed users are gone', async ({ page }) => {
  test.setTimeout(120_000);
  const before = await scim.ids();
  expect(before.size).toBe(12);

  await connect(page, server.baseURL, { base: scim.site }, TOKEN);
  await expect(connected(page)).toContainText('lists 12 users');

  await open(page, server.baseURL, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('Email\nuser1@corp.test\nUSER2@corp.test\nuser3@corp.test\nnobody@corp.test\n'),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.getByRole('button', { name: /3\s*will be deleted/ })).toBeVisible();
  await expect(page.getByRole('button', { name: /1\s*not found/ })).toBeVisible();
  // Each address is shown with the account ID scim2-server holds for it.
  const rows = bodyRows(page.getByRole('table', { name: 'Preview rows' }));
  for (const [i, address] of [[1, 'user1@corp.test'], [2, 'USER2@corp.test'], [3, 'user3@corp.test']] as const) {
    await expect(rows.filter({ hasText: address })).toContainText(ids[i]);
  }
  await expect(rows.filter({ hasText: 'nobody@corp.test' })).toContainText(/not found/i);

  const jobId = await confirmRun(page, 'Delete 3 users');
  await expect(runState(page)).toContainText('Finished', { timeout: 60_000 });
  await expect(page.getByText('3 of 3 users processed')).toBeVisible();

  const asked = [ids[1], ids[2], ids[3]].sort();
  // Every report, as the admin downloads it from the run page.
  const csv = await report(page, 'All results (CSV)');
  // The spreadsheet's own header, then every line of the file in order: its header row, the
  // three users, the unknown address.
  const lines = csv.trim().split('\n');
  expect(lines, csv).toHaveLength(6);
  for (const id of asked) expect(csv).toContain(id);
  expect(lines[5], csv).toContain('nobody@corp.test');
  expect(lines[5], csv).toContain('not deleted');
  const results = JSON.parse(await report(page, 'All results (JSON)'));
  expect(results.map((r: { account_id: string }) => r.account_id).sort()).toEqual(asked);
  for (const r of results) expect(String(r.outcome).toLowerCase()).toBe('deleted');
  // Only the unknown address failed, in the old script's format.
  const failures = JSON.parse(await report(page, /^Failures/));
  expect(failures).toHaveLength(1);
  expect(failures[0]).toMatchObject({ email: 'nobody@corp.test', status: 'failed' });
  const listing = await report(page, 'Site users at the start (JSON)');
  for (const id of before) expect(listing).toContain(id);
  const run = JSON.parse(await report(page, /^The run: who started/));
  expect(run).toMatchObject({ id: jobId, state: 'finished' });
  for (const text of [csv, listing, JSON.stringify(results), JSON.stringify(run)]) expect(text).not.toContain(TOKEN);

  // Asked of scim2-server itself: exactly the three confirmed users are gone.
  const after = await scim.ids();
  const gone = [...before].filter((id) => !after.has(id)).sort();
  expect(gone).toEqual(asked);
});
