// Two promises of the Choose and Preview screens, in Chromium against the release binary:
// a file dragged onto the upload area is the file the preview reads, and when Offboard reads
// the wrong column of a spreadsheet export the admin picks the right one and the preview uses
// it. SCIM side: the project's Stack-shaped fault server, a FAKE site (a test double; nothing
// here depends on how a real site answers, only on which users it lists).
import { test, expect } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, bodyRows, connect, connected, open } from './support/flow';

let server: Console;
let fault: FaultServer;

test.beforeAll(async () => {
  // user1@example.com … user30@example.com, account IDs 1001 … 1030.
  fault = await FaultServer.start(['--users', '30']);
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  fault?.stop();
});

test('a CSV dropped on the upload area is the file the preview reads', async ({ page }) => {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, server.baseURL, '/choose');

  // The drop as Chromium delivers it: dragenter, dragover, drop, with a DataTransfer carrying
  // the file (what dragging it from the file manager gives the page).
  const files = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['email\nuser1@example.com\nuser2@example.com\n'], 'dropped.csv', { type: 'text/csv' }));
    return dt;
  });
  const area = page.getByText(/^Or drag a file here/);
  for (const type of ['dragenter', 'dragover', 'drop']) {
    await area.dispatchEvent(type, { dataTransfer: files });
  }
  await expect(page.getByText('Chosen: dropped.csv')).toBeVisible();
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.getByRole('button', { name: /2\s*will be deleted/ })).toBeVisible();
  const rows = bodyRows(page.getByRole('table', { name: 'Preview rows' }));
  await expect(rows.filter({ hasText: 'user1@example.com' })).toContainText('1001');
  await expect(rows.filter({ hasText: 'user2@example.com' })).toContainText('1002');
  await expect(rows).toHaveCount(2);
});

test('the admin picks the column Offboard did not find by name, and the preview reads it', async ({ page }) => {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, server.baseURL, '/choose');
  // No column is named like an email column; two hold addresses: the managers (who stay)
  // and, with fewer filled cells, the people who left.
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'hr-export.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(
      'Name,Manager,Leaver\n' +
        'Ann,user20@example.com,user3@example.com\n' +
        'Bob,user21@example.com,user4@example.com\n' +
        'Cy,user22@example.com,\n',
    ),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  const picker = page.getByLabel('Column with emails or account IDs');
  await expect(picker).toBeVisible();
  // Offboard's own pick: the fuller column, the managers.
  await expect(page.getByText(/^Offboard read column “Manager”/)).toBeVisible();
  await expect(page.getByRole('button', { name: /3\s*will be deleted/ })).toBeVisible();

  await picker.selectOption({ label: 'Leaver' });
  await expect(page.getByText(/^Offboard read column “Leaver”: chosen by you/)).toBeVisible();
  await expect(page.getByRole('button', { name: /2\s*will be deleted/ })).toBeVisible();
  const rows = bodyRows(page.getByRole('table', { name: 'Preview rows' }));
  await expect(rows.filter({ hasText: 'user3@example.com' })).toContainText('1003');
  await expect(rows.filter({ hasText: 'user4@example.com' })).toContainText('1004');
  await expect(page.getByRole('table', { name: 'Preview rows' })).not.toContainText('user20@example.com');
  // The phrase counts the users of the column picked.
  await expect(page.getByText('To go ahead, type this phrase exactly:')).toContainText('DELETE 2 USERS');
});
