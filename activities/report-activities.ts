// Sending a run's report (activities on the main queue): by email through the config's SMTP server
// (nodemailer), and as JSON POSTed to a webhook. Each is its own activity so Temporal retries one
// without repeating the other; the workflow records their outcome and never fails the run for them.
import { ApplicationFailure } from '@temporalio/activity';
import nodemailer from 'nodemailer';
import { resolveSecret } from '../config/secrets';
import type { SmtpConfig } from '../core/config/schema';
import { reportHtml, reportSubject, reportText } from '../core/report-text';
import type { RunReport, RunResult } from '../core/run-report';

export interface ReportActivities {
  sendReportEmail(req: {
    /** the run's result: the full report is read where it is stored */
    report: RunResult | RunReport;
    to: string[];
  }): Promise<{ messageId: string; accepted: string[] }>;
  postReportWebhook(req: { report: RunResult | RunReport; url: string }): Promise<{ status: number }>;
}

const WEBHOOK_TIMEOUT_MS = 30_000;

export function createReportActivities(
  smtp: SmtpConfig | undefined,
  /** the full report of a run's result (activities/run-report-activities runReportReader) */
  fullReport: (result: RunResult | RunReport) => Promise<RunReport>,
): ReportActivities {
  return {
    async sendReportEmail({ report: result, to }) {
      if (!smtp)
        throw ApplicationFailure.nonRetryable(
          'the worker config has no smtp section to send reports through',
          'NO_SMTP',
        );
      const transport = nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure,
        auth: smtp.username
          ? {
              user: smtp.username,
              pass: smtp.password ? await resolveSecret(smtp.password, 'smtp.password') : '',
            }
          : undefined,
      });
      try {
        const report = await fullReport(result);
        const sent = await transport.sendMail({
          from: smtp.from,
          to,
          subject: reportSubject(report),
          text: reportText(report),
          html: reportHtml(report),
        });
        return { messageId: sent.messageId, accepted: sent.accepted.map(String) };
      } finally {
        transport.close();
      }
    },

    async postReportWebhook({ report: result, url }) {
      const report = await fullReport(result);
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'xcp-backup' },
        body: JSON.stringify(report),
        signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      });
      await response.body?.cancel();
      if (response.ok) return { status: response.status };
      const message = `webhook ${new URL(url).host} answered HTTP ${response.status}`;
      // A refusal (bad URL, auth) stays a refusal; a server error or throttling may pass.
      if (
        response.status >= 400 &&
        response.status < 500 &&
        response.status !== 408 &&
        response.status !== 429
      )
        throw ApplicationFailure.nonRetryable(message, `HTTP_${response.status}`);
      throw ApplicationFailure.retryable(message, `HTTP_${response.status}`);
    },
  };
}
