// Global test setup. The Postgres part is filled in by test/support/postgres.ts.
export default async function setup(): Promise<() => Promise<void>> {
  return async () => {};
}
