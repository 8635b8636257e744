// The search attributes of a run (DESIGN §4): columns in the Web UI and filters for `xcpb runs`.
// Prefixed so they never clash with Temporal's own names.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA = {
  jobId: defineSearchAttributeKey('XcpbJobId', SearchAttributeType.KEYWORD),
  scheduleId: defineSearchAttributeKey('XcpbScheduleId', SearchAttributeType.KEYWORD),
  mode: defineSearchAttributeKey('XcpbMode', SearchAttributeType.KEYWORD),
  poolIds: defineSearchAttributeKey('XcpbPoolIds', SearchAttributeType.KEYWORD_LIST),
  vmUuids: defineSearchAttributeKey('XcpbVmUuids', SearchAttributeType.KEYWORD_LIST),
  outcome: defineSearchAttributeKey('XcpbOutcome', SearchAttributeType.KEYWORD),
} as const;

/** `Name=Type` pairs as `temporal server start-dev --search-attribute` takes them. */
export const SEARCH_ATTRIBUTE_FLAGS: readonly string[] = [
  'XcpbJobId=Keyword',
  'XcpbScheduleId=Keyword',
  'XcpbMode=Keyword',
  'XcpbPoolIds=KeywordList',
  'XcpbVmUuids=KeywordList',
  'XcpbOutcome=Keyword',
];

/** Temporal's default limit on one search attribute value (limit.searchAttributeValueSize). */
export const SEARCH_ATTRIBUTE_VALUE_LIMIT = 2048;

/**
 * A keyword list as a search attribute value, or undefined when it would pass the size limit (a run
 * of a few hundred VMs): then each VM's child workflow, which carries its own uuid, is what a search
 * by VM finds.
 */
export function keywordListIfItFits(values: readonly string[]): string[] | undefined {
  return JSON.stringify(values).length < SEARCH_ATTRIBUTE_VALUE_LIMIT ? [...values] : undefined;
}
