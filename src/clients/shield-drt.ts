import { bindClient } from './bind.js';
import type { ShieldClient } from '@aws-sdk/client-shield';

/** The role the Shield Response Team may assume now (null: none). */
export async function describeDrtRole(client: ShieldClient): Promise<string | null> {
  const m = await import('@aws-sdk/client-shield');
  return (await client.send(new m.DescribeDRTAccessCommand({}))).RoleArn ?? null;
}

/** Associates `roleArn`, or removes the association when null. */
export async function setDrtRole(client: ShieldClient, roleArn: string | null): Promise<void> {
  const m = await import('@aws-sdk/client-shield');
  if (roleArn) await client.send(new m.AssociateDRTRoleCommand({ RoleArn: roleArn }));
  else await client.send(new m.DisassociateDRTRoleCommand({}));
}

/** The Shield Advanced calls of the procedures (`ctx.clients.shield()`). */
export function shieldApi(client: ShieldClient) {
  return bindClient(client, { describeDrtRole, setDrtRole });
}
export type ShieldApi = ReturnType<typeof shieldApi>;
