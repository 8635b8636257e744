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
