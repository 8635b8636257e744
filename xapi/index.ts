export { connectXapi, type XapiClient, type XapiConnectOptions, type XapiEvent } from './client';
export { isReadOnlyCall, isRetryable, XapiError, XapiTransportError } from './errors';
export { UNKNOWN_LENGTH } from './http-transfer';
export { parseTaskResult } from './task-result';
