// Keyboard-only use, and a 10,000-row preview that stays paged (never 10,000 rows in the DOM).
// SCIM side: the project's fault server (a test double); console: the real release binary.
import { test, expect, Page, Locator } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, connect, open, bodyRows, connected, phraseOf, runState } from './support/flow';

let server: Console;
let fault: FaultServer;

test.beforeAll(async () => {
  fault = await FaultServer.start(['--users', '10000']);
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  fault?.stop();
});

/** Presses Tab until `target` has the focus: proves it is reachable without a mouse. */
async function tabTo(page: Page, target: Locator, limit = 80): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (await target.evaluate((el) => el === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`not reachable with Tab: ${target}`);
}

test('an admin can preview and run with the keyboard alone', async ({ page }) => {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();

  await open(page, server.baseURL, '/choose');
  const pasted = page.getByRole('textbox', { name: 'or paste a list' });
  await tabTo(page, pasted);
  await page.keyboard.type('user21@example.com\nuser22@example.com\n');
  await tabTo(page, page.getByRole('button', { name: 'Preview these users' }));
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');

  const phrase = await phraseOf(page);
  expect(phrase).toBe('DELETE 2 USERS');
  await tabTo(page, page.getByLabel('Type the phrase to confirm'));
  await page.keyboard.type(phrase);
  await tabTo(page, page.getByRole('button', { name: 'Delete 2 users' }));
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/run\?id=/);
  await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
  expect((await fault.state()).deleted.sort()).toEqual(['1021', '1022']);
});

test('a 10,000-row preview is shown a page at a time', async ({ page }) => {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  const deletedBefore = (await fault.state()).deleted.length;
  await open(page, server.baseURL, '/choose');
  const emails = Array.from({ length: 10_000 }, (_, i) => `user${i + 1}@example.com`);
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'everyone.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(emails.join('\n') + '\n'),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/, { timeout: 60_000 });
  await expect(page.getByRole('button', { name: /all rows/ })).toContainText('10,000');
  const rows = await bodyRows(page.getByRole('table')).count();
  expect(rows).toBeGreaterThan(0);
  expect(rows).toBeLessThanOrEqual(100);
  // Nothing was deleted by previewing.
  expect((await fault.state()).deleted.length).toBe(deletedBefore);
});
