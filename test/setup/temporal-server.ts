// Placeholder until the foundation lands: no Temporal server yet.
export default async function setup(): Promise<void> {}
