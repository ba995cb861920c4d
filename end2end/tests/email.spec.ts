// Email notifications (issue 20), as two people meet them in Chromium, with a real mail server
// (PyPI aiosmtpd: support/mail.ts): Carol (operator) asks for approval; Olive (owner) sees it in
// "Waiting for you" and receives the email, follows its link, approves; Carol receives
// "Approved and started" and then "Run finished". Then Carol chooses on her Account page which
// emails she gets. SCIM side: the project's Stack-shaped fault server (a FAKE Stack site, a test
// double); console: the real release binary.
import { test, expect, BrowserContext } from '@playwright/test';
import { Console, FIRST_OWNER, freePort } from './support/servers';
import { FaultServer, TOKEN, askForApproval, checkScreen, connect, open, phraseOf, runState } from './support/flow';
import { MailSink } from './support/mail';
import { browserOf, joined } from './support/people';

const CAROL = { name: 'Carol', email: 'user3@example.com', password: 'another long password' };

test('Olive is emailed the request, follows its link and approves; Carol is emailed the start and the end', async ({
  page,
  browser,
}) => {
  test.setTimeout(180_000);
  const fault = await FaultServer.start(['--users', '30']);
  const mail = await MailSink.start();
  const port = await freePort();
  const server = await Console.start(
    {
      OFFBOARD_PUBLIC_URL: `http://127.0.0.1:${port}`,
      OFFBOARD_SMTP_URL: `smtp://127.0.0.1:${mail.port}`,
      OFFBOARD_SMTP_FROM: 'Offboard <offboard@offboard.test>',
    },
    true,
    port,
  );
  let carolBrowser: BrowserContext | undefined;
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    const carolCookie = await joined(server, 'operator', CAROL);
    // Olive made the invitation: she hears that Carol accepted it.
    const accepted = await mail.to(FIRST_OWNER.email, 'Invitation accepted');
    expect(accepted.text).toContain(`${CAROL.name} <${CAROL.email}> accepted an invitation`);

    carolBrowser = await browserOf(browser, server, carolCookie);
    const carol = await carolBrowser.newPage();
    const previewPath = await askForApproval(carol, server.baseURL, 'Email\nuser20@example.com\nuser21@example.com\n');

    // Olive sees the request waiting for her, and the email about it arrives.
    await open(page, server.baseURL, '/');
    const waiting = page.getByRole('region', { name: 'Waiting for you' });
    await expect(waiting).toContainText(`${CAROL.name} <${CAROL.email}> asks to delete 2 users`);
    const asked = await mail.to(FIRST_OWNER.email, 'Approval requested');
    expect(asked.subject).toBe('Offboard: Approval requested');
    expect(asked.text).toContain(`${CAROL.name} <${CAROL.email}> asks for a second operator's approval to delete 2 users`);
    expect(asked.html).toContain('<h1');
    expect(JSON.stringify(asked)).not.toContain('user20@example.com');
    // Carol asked: she is not emailed her own request.
    expect(mail.messages().filter((m) => m.to.includes(CAROL.email) && m.subject.includes('Approval requested'))).toEqual([]);

    // Olive follows the email's link, and approves by typing the phrase.
    const followed = asked.text.match(/Open it in Offboard: (\S+)/)?.[1] ?? '';
    expect(followed).toBe(`${server.baseURL}${previewPath}`);
    await open(page, server.baseURL, previewPath);
    await expect(page.getByRole('region', { name: 'Confirm' }).getByRole('status')).toContainText(
      `${CAROL.name} <${CAROL.email}> asked for this run`,
    );
    await page.getByLabel('Type the phrase to confirm').fill(await phraseOf(page));
    await page.getByRole('button', { name: 'Delete 2 users' }).click();
    await page.waitForURL(/\/run\?id=/);
    const runPath = new URL(page.url()).pathname + new URL(page.url()).search;
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });

    // Carol hears that it was approved and started, then that it finished, each with the run's link.
    const started = await mail.to(CAROL.email, 'Approved and started');
    expect(started.text).toContain(`Olive Owner <${FIRST_OWNER.email}> approved`);
    expect(started.text).toContain(`${server.baseURL}${runPath}`);
    const finished = await mail.to(CAROL.email, 'Run finished');
    expect(finished.text).toContain('2 of 2 users processed');
    expect(finished.html).toContain(`<a href="${server.baseURL}${runPath}">Open it in Offboard</a>`);

    // Carol's Account page: every email is on until she turns one off.
    await open(carol, server.baseURL, '/account');
    const choices = carol.getByRole('group', { name: 'Email me when' });
    await expect(carol.getByTestId('email-note')).toContainText(`Offboard emails ${CAROL.email}`);
    const runEnds = choices.getByRole('checkbox', { name: 'A run I started or approved ended' });
    await expect(runEnds).toBeChecked();
    await checkScreen(carol, '62-email-choices');
    await runEnds.uncheck();
    await carol.getByRole('button', { name: 'Save email choices' }).click();
    await expect(carol.getByText('Your email choices were saved.')).toBeVisible();
    await expect(choices.getByRole('checkbox', { name: 'A run I started or approved ended' })).not.toBeChecked();
    await expect(choices.getByRole('checkbox', { name: /asks for a second operator's approval/ })).toBeChecked();
  } finally {
    await carolBrowser?.close();
    await server.stop();
    mail.stop();
    fault.stop();
  }
});
