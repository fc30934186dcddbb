// The running containers' periodic schema reads, shared per database: with 7 containers per
// release checking every 200 ms, one query each was most of the simulation's (and Postgres') work.

/**
 * One read per database for the callers that ask in the same turn of the event loop. A read is
 * sent only after every caller that joins it has asked, so no caller gets a revision older than
 * its own request (a container that starts right after a migration must not be judged on the
 * schema from before it).
 */
export class SharedSchemaReads {
  private readonly waiting = new Map<string, Promise<string | null>>();

  constructor(private readonly readRevision: (url: string) => Promise<string | null>) {}

  read(url: string): Promise<string | null> {
    let read = this.waiting.get(url);
    if (!read) {
      read = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.waiting.delete(url);
        return this.readRevision(url);
      });
      this.waiting.set(url, read);
    }
    return read;
  }
}
