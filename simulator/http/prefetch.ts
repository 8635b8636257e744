/**
 * Iterates `source` while keeping up to `depth` items requested ahead, so that reading the next
 * blocks from disk overlaps with sending the current one. Holds at most `depth` items.
 */
export async function* prefetch<T>(source: AsyncIterable<T>, depth = 2): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  const queue: Promise<IteratorResult<T>>[] = [];
  try {
    for (;;) {
      while (queue.length < depth) queue.push(it.next());
      const r = await queue.shift()!;
      if (r.done) return;
      yield r.value;
    }
  } finally {
    // settle what was requested ahead before closing the source
    await Promise.allSettled(queue);
    await it.return?.();
  }
}
