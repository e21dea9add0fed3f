import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CallbackTarget } from './callback.js';
import { errorMessage } from './errors.js';
import type { PluginLogger } from './logger.js';

interface StoredRoute {
  url: string;
  token?: string;
  updatedAtMs: number;
}

interface StoreFile {
  version: 1;
  routes: Record<string, StoredRoute>;
}

/**
 * Remembers, per openid, the callback URL and token of the last message that user sent, so that
 * messages the agent sends later on its own (reminders, cron jobs) reach the same bridge.
 * Kept in one JSON file (mode 0600: it holds callback tokens), written atomically.
 */
export class CallbackRouteStore {
  private readonly routes = new Map<string, StoredRoute>();
  private loaded = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly filePath: string,
    private readonly logger: PluginLogger,
    private readonly maxEntries = 10_000,
  ) {}

  get path(): string {
    return this.filePath;
  }

  /** Loads the file once; a missing file is an empty store, a corrupt one is logged and ignored. */
  async load(): Promise<void> {
    if (this.loaded) return;
    this.loaded = true;
    let raw: string;
    try {
      raw = await readFile(this.filePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.logger.warn(`could not read callback routes from ${this.filePath}: ${errorMessage(err)}`);
      }
      return;
    }
    try {
      const parsed = JSON.parse(raw) as Partial<StoreFile>;
      for (const [openid, route] of Object.entries(parsed.routes ?? {})) {
        if (route && typeof route.url === 'string') this.routes.set(openid, route);
      }
    } catch (err) {
      this.logger.warn(`ignoring unreadable callback routes file ${this.filePath}: ${errorMessage(err)}`);
    }
  }

  async get(openid: string): Promise<CallbackTarget | undefined> {
    await this.load();
    const route = this.routes.get(openid);
    if (!route) return undefined;
    return { url: route.url, ...(route.token !== undefined ? { token: route.token } : {}) };
  }

  /** Records the route of `openid`; writes the file only when something changed. */
  async set(openid: string, target: CallbackTarget): Promise<void> {
    await this.load();
    const previous = this.routes.get(openid);
    if (previous && previous.url === target.url && previous.token === target.token) return;
    this.routes.delete(openid);
    this.routes.set(openid, {
      url: target.url,
      ...(target.token !== undefined ? { token: target.token } : {}),
      updatedAtMs: Date.now(),
    });
    while (this.routes.size > this.maxEntries) {
      const oldest = this.routes.keys().next().value;
      if (oldest === undefined) break;
      this.routes.delete(oldest);
    }
    await this.persist();
  }

  private persist(): Promise<void> {
    const snapshot: StoreFile = { version: 1, routes: Object.fromEntries(this.routes) };
    this.writing = this.writing.then(async () => {
      const tmp = `${this.filePath}.${process.pid}.tmp`;
      try {
        await mkdir(dirname(this.filePath), { recursive: true, mode: 0o700 });
        await writeFile(tmp, JSON.stringify(snapshot), { mode: 0o600 });
        await chmod(tmp, 0o600);
        await rename(tmp, this.filePath);
      } catch (err) {
        this.logger.error(`could not save callback routes to ${this.filePath}: ${errorMessage(err)}`);
      }
    });
    return this.writing;
  }
}
