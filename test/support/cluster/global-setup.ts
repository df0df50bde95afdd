/**
 * vitest global setup: builds the control plane if this version has no cached binary, starts one
 * for the whole run and shares it with the test workers (each test file then takes a namespace).
 */
import { shareControlPlane, startControlPlane, type ControlPlane } from './control-plane.js';

let cp: ControlPlane | undefined;

export async function setup(): Promise<void> {
  const started = Date.now();
  cp = await startControlPlane();
  shareControlPlane(cp.info);
  process.stderr.write(`control plane ready in ${Date.now() - started} ms (${cp.info.server}; components up in ${cp.info.startupMs} ms)\n`);
}

export async function teardown(): Promise<void> {
  await cp?.stop();
}
