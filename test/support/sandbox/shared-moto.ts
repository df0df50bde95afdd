import { startMoto, type MotoService } from '../services/index.js';
import type { SandboxContext } from './types.js';

const shared = new Map<string, { moto: Promise<MotoService>; users: number }>();

/**
 * One moto_server per sandbox, shared by the parts that need AWS: every part writes the same
 * `aws.endpoint` into the environment config, so separate motos would shadow each other's resources.
 * `release()` stops it when the last part using it is done.
 */
export async function sandboxMoto(ctx: SandboxContext): Promise<{ moto: MotoService; release(): Promise<void> }> {
  let entry = shared.get(ctx.dir);
  if (!entry) {
    entry = { moto: startMoto(), users: 0 };
    shared.set(ctx.dir, entry);
  }
  entry.users++;
  const e = entry;
  let released = false;
  try {
    const moto = await e.moto;
    return {
      moto,
      async release() {
        if (released) return;
        released = true;
        if (--e.users === 0) {
          shared.delete(ctx.dir);
          await moto.stop();
        }
      },
    };
  } catch (err) {
    e.users--;
    if (shared.get(ctx.dir) === e) shared.delete(ctx.dir);
    throw err;
  }
}
