// The retention policy (issue 21, item 4) as an owner meets it in Chromium: the Team page's
// "Retention policy" section. A time zone Offboard does not know is refused in words and
// nothing is saved; Europe/Berlin, Mondays at 09:00, 30 days is saved and said back with the
// next time it acts; the page reads clearly at 1280 and 390 px and passes axe-core; an
// operator is not shown the section. SCIM side: the project's Stack-shaped fault server (a
// FAKE Stack site, a test double); console: the real release binary. That the policy fires
// once after a clock jump, prepares the right preview and deletes nobody is
// server/tests/retention.rs (the real binary under libfaketime, both databases).
import { test, expect, BrowserContext, Page } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, checkScreen, connect, open } from './support/flow';
import { browserOf, joined } from './support/people';

const policy = (page: Page) => page.getByRole('region', { name: 'Retention policy' });

test("an owner sets the retention policy and the team's time zone; an operator sees none of it", async ({
  page,
  browser,
}) => {
  test.setTimeout(120_000);
  const fault = await FaultServer.start(['--users', '5']);
  const server = await Console.start();
  let operatorBrowser: BrowserContext | undefined;
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await open(page, server.baseURL, '/team');
    await expect(policy(page).getByTestId('retention-state')).toHaveText('Off: nothing is prepared.');

    // A zone Offboard does not know: refused in words, nothing saved.
    await policy(page).getByLabel("Team's time zone").fill('Mars/Olympus');
    await policy(page).getByLabel('Prepare deletions on a schedule').check();
    await policy(page).getByRole('button', { name: 'Save retention policy' }).click();
    await expect(page.getByText(/"Mars\/Olympus" is not a time zone Offboard knows/)).toBeVisible();
    await expect(policy(page).getByTestId('retention-state')).toHaveText('Off: nothing is prepared.');

    // Europe/Berlin, Mondays at 09:00, users deactivated for at least 30 days.
    await policy(page).getByLabel("Team's time zone").fill('Europe/Berlin');
    await policy(page).getByLabel('Prepare deletions on a schedule').check();
    await policy(page).getByLabel('Days deactivated').fill('30');
    await policy(page).getByLabel('Every', { exact: true }).selectOption({ label: 'Monday' });
    await policy(page).getByLabel('At', { exact: true }).fill('09:00');
    await policy(page).getByRole('button', { name: 'Save retention policy' }).click();
    const state = policy(page).getByTestId('retention-state');
    await expect(state).toContainText('On: the next deletion of users deactivated for at least 30 days is prepared');
    await expect(state).toContainText('Monday');
    await expect(state).toContainText('Europe/Berlin');
    await expect(policy(page).getByLabel("Team's time zone")).toHaveValue('Europe/Berlin');
    await checkScreen(page, '93-retention-policy');

    // An operator of the team is not shown the section at all.
    const carol = { name: 'Carol', email: 'user3@example.com', password: 'another long password' };
    operatorBrowser = await browserOf(browser, server, await joined(server, 'operator', carol));
    const carolPage = await operatorBrowser.newPage();
    await open(carolPage, server.baseURL, '/team');
    await expect(carolPage.getByRole('heading', { name: 'Members' }).or(carolPage.getByRole('heading').first())).toBeVisible();
    await expect(policy(carolPage)).toHaveCount(0);
  } finally {
    await operatorBrowser?.close();
    await server.stop();
    fault.stop();
  }
});
