// Recognises the errors of a cluster or namespace that `xcpb server setup` has not prepared (the
// namespace is missing, or our search attributes are not registered in it) wherever the SDK wraps them
// ("Failed to create schedule", a failed list query, a failed start), so commands can say in one line
// what to run instead of the server's message.
import { NamespaceNotFoundError } from '@temporalio/client';
import { SA } from '../core/search-attributes';

const OUR_ATTRIBUTES = Object.values(SA).map((k) => k.name);

const fix = (namespace: string) => `run \`xcpb server setup --namespace ${namespace}\``;

function* causes(err: unknown): Generator<unknown> {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) yield e;
}

/** The one-line explanation, or undefined when the error is about something else. */
export function explainSetupError(err: unknown, namespace: string): string | undefined {
  for (const e of causes(err)) {
    if (e instanceof NamespaceNotFoundError)
      return `namespace "${e.namespace}" does not exist on this Temporal server: ${fix(e.namespace)}`;
    const message = (e as Error)?.message ?? '';
    if (/namespace\s.*\bnot (be )?found/i.test(message))
      return `namespace "${namespace}" does not exist on this Temporal server: ${fix(namespace)}`;
    const attribute = OUR_ATTRIBUTES.find((name) => message.includes(name));
    if (attribute && /search attribute|no mapping|not defined|unknown|invalid/i.test(message))
      return `namespace "${namespace}" has no search attribute ${attribute}: ${fix(namespace)}`;
  }
  return undefined;
}
