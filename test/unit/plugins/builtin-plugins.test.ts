// The built-in plugins, table-driven: facts in, verdict out; and their option parsing.
import bannedApps from '../../../plugins/banned-apps';
import requireDevice from '../../../plugins/require-device';
import platforms from '../../../plugins/platforms';
import minOsVersion, { compareVersions, parseVersion } from '../../../plugins/min-os-version';
import managedOnly from '../../../plugins/managed-only';
import type { CheckFacts, CheckPlugin, Verdict } from '../../../src/policy/contract';
import { NOW, device, facts } from '../../fixtures/plugins/policy-fixtures';

const stale = device({ reportedAt: new Date(NOW.getTime() - 48 * 3_600_000).toISOString() });
const notCurrentCases: [string, Partial<CheckFacts>, string][] = [
  ['missing', { device: null, deviceStatus: 'missing' }, 'UNKNOWN_DEVICE'],
  ['stale', { device: stale, deviceStatus: 'stale' }, 'STALE_REPORT'],
  ['malformed', { device: null, deviceStatus: 'malformed' }, 'MALFORMED_RECORD'],
];

async function verdictOf<O>(plugin: CheckPlugin<O>, rawOptions: unknown, f: CheckFacts): Promise<Verdict> {
  return plugin.evaluate(f, plugin.parseOptions(rawOptions));
}

/** verdict + code, the part of a verdict the policy acts on. */
function summary(v: Verdict): string {
  return v.verdict === 'pass' ? 'pass' : `${v.verdict} ${v.code}`;
}

describe('banned-apps', () => {
  const options = {
    apps: { ios: ['com.zhiliaoapp.musically'], android: ['com.zhiliaoapp.musically', 'com.ss.android.ugc.trill'] },
    names: { 'com.zhiliaoapp.musically': 'TikTok', 'com.ss.android.ugc.trill': 'TikTok' },
  };
  it.each<[string, Partial<CheckFacts>, string]>([
    ['iOS with TikTok', { device: device({ apps: ['com.apple.mobilemail', 'com.zhiliaoapp.musically'] }) }, 'fail BANNED_APP'],
    ['iOS without TikTok', { device: device({ apps: ['com.apple.mobilemail'] }) }, 'pass'],
    ['iOS with TikTok in other case', { device: device({ apps: ['COM.ZhiliaoApp.Musically'] }) }, 'fail BANNED_APP'],
    ['Android with the trill id', { device: device({ platform: 'android', apps: ['com.ss.android.ugc.trill'] }) }, 'fail BANNED_APP'],
    ['macOS with TikTok (no list for macos)', { device: device({ platform: 'macos', apps: ['com.zhiliaoapp.musically'] }) }, 'pass'],
    ['iOS with no inventory', { device: device({ apps: undefined }) }, 'unknown INVENTORY_UNAVAILABLE'],
    ['macOS with no inventory', { device: device({ platform: 'macos', apps: undefined }) }, 'pass'],
    ['Intune: display name only', { device: device({ apps: [], appNames: ['Outlook', 'TikTok'] }) }, 'fail BANNED_APP'],
    ['display name in other case, macOS bundle suffix', { device: device({ platform: 'android', apps: [], appNames: ['tiktok.app'] }) }, 'fail BANNED_APP'],
    ['a similar name is not the banned one', { device: device({ apps: [], appNames: ['TikTok Lite Helper'] }) }, 'pass'],
    ['names but no inventory (not visible)', { device: device({ apps: undefined, appNames: undefined }) }, 'unknown INVENTORY_UNAVAILABLE'],
    ...notCurrentCases.map(([name, f, code]): [string, Partial<CheckFacts>, string] => [name, f, `unknown ${code}`]),
  ])('%s', async (_name, f, expected) => {
    expect(summary(await verdictOf(bannedApps, options, facts(f)))).toBe(expected);
  });

  it('names the app for the user and the ids for the operator, once per name', async () => {
    const v = await verdictOf(bannedApps, options, facts({ device: device({ platform: 'android', apps: ['com.ss.android.ugc.trill', 'com.zhiliaoapp.musically'] }) }));
    expect(v).toMatchObject({ verdict: 'fail', vars: { app: 'TikTok', appId: 'com.ss.android.ugc.trill, com.zhiliaoapp.musically' } });
  });

  it('a match by display name tells the operator the name seen and the id it stands for', async () => {
    const v = await verdictOf(bannedApps, options, facts({ device: device({ apps: [], appNames: ['TikTok'] }) }));
    expect(v).toMatchObject({ verdict: 'fail', reason: 'banned app installed: TikTok', vars: { app: 'TikTok', appId: 'com.zhiliaoapp.musically' } });
  });

  it('shows the id when no display name is configured', async () => {
    const v = await verdictOf(bannedApps, { apps: { ios: ['com.example.game'] } }, facts({ device: device({ apps: ['com.example.game'] }) }));
    expect(v).toMatchObject({ vars: { app: 'com.example.game', appId: 'com.example.game' } });
  });

  it.each<[unknown, string]>([
    [{ apps: { ios: ['ok', 7] } }, 'apps.ios[1]: expected a string'],
    [{ apps: { ios: [] } }, 'apps.ios: expected at least 1 item'],
    [{ apps: {} }, 'apps: expected at least one platform'],
    [{}, 'apps: required (platform → list of app ids)'],
    [{ apps: { ios: 'com.x' } }, 'apps.ios: expected a list of strings, got string "com.x"'],
    [{ apps: { ios: ['x'] }, name: {} }, 'name: unknown option (known: apps, names)'],
    [{ apps: { ios: ['x'] }, names: { 'com.x': 3 } }, 'names["com.x"]: expected a string'],
    [null, 'expected a mapping, got null'],
  ])('rejects options %j', (raw, message) => {
    expect(() => bannedApps.parseOptions(raw)).toThrow(message);
  });
});

describe('require-device', () => {
  it.each<[string, Partial<CheckFacts>, unknown, string]>([
    ['current', {}, {}, 'pass'],
    ['missing', { device: null, deviceStatus: 'missing' }, {}, 'fail UNKNOWN_DEVICE'],
    ['stale', { device: stale, deviceStatus: 'stale' }, {}, 'fail STALE_REPORT'],
    ['malformed', { device: null, deviceStatus: 'malformed' }, {}, 'fail MALFORMED_RECORD'],
    ['current but older than the override', { device: device({ reportedAt: new Date(NOW.getTime() - 3 * 3_600_000).toISOString() }) }, { maxReportAgeHours: 2 }, 'fail STALE_REPORT'],
    ['stale by the store but within the override', { device: stale, deviceStatus: 'stale' }, { maxReportAgeHours: 72 }, 'pass'],
    ['unreadable report time with an override', { device: device({ reportedAt: 'yesterday' }) }, { maxReportAgeHours: 72 }, 'fail STALE_REPORT'],
  ])('%s', async (_name, f, options, expected) => {
    expect(summary(await verdictOf(requireDevice, options, facts(f)))).toBe(expected);
  });

  it('accepts no options and rejects a negative age', () => {
    expect(requireDevice.parseOptions(undefined)).toEqual({});
    expect(() => requireDevice.parseOptions({ maxReportAgeHours: -1 })).toThrow('maxReportAgeHours: expected a number >= 0');
  });
});

describe('platforms', () => {
  it.each<[string, unknown, string, string]>([
    ['allow list, allowed', { allow: ['macos', 'windows'] }, 'macos', 'pass'],
    ['allow list, not allowed', { allow: ['macos', 'windows'] }, 'ios', 'fail PLATFORM_NOT_ALLOWED'],
    ['deny list, denied', { deny: ['Android'] }, 'android', 'fail PLATFORM_NOT_ALLOWED'],
    ['deny list, other', { deny: ['android'] }, 'ios', 'pass'],
    ['both, denied wins', { allow: ['ios'], deny: ['ios'] }, 'ios', 'fail PLATFORM_NOT_ALLOWED'],
  ])('%s', async (_name, options, platform, expected) => {
    expect(summary(await verdictOf(platforms, options, facts({ device: device({ platform }) })))).toBe(expected);
  });

  it.each(notCurrentCases)('%s device → unknown', async (_name, f, code) => {
    expect(summary(await verdictOf(platforms, { allow: ['ios'] }, facts(f)))).toBe(`unknown ${code}`);
  });

  it('needs allow or deny', () => {
    expect(() => platforms.parseOptions({})).toThrow('expected `allow` or `deny`');
  });
});

describe('min-os-version', () => {
  const options = { minimum: { ios: '17.4', android: 14 } };
  it.each<[string, string, string]>([
    ['ios', '17.4', 'pass'],
    ['ios', '17.10', 'pass'],
    ['ios', '17.3.1', 'fail OS_TOO_OLD'],
    ['ios', '16', 'fail OS_TOO_OLD'],
    ['ios', '17.4.1 (21E236)', 'pass'],
    ['ios', 'unknown', 'unknown OS_VERSION_UNKNOWN'],
    ['android', '13', 'fail OS_TOO_OLD'],
    ['android', '14.0', 'pass'],
    ['macos', '10.1', 'pass'],
  ])('%s %s → %s', async (platform, osVersion, expected) => {
    expect(summary(await verdictOf(minOsVersion, options, facts({ device: device({ platform, osVersion }) })))).toBe(expected);
  });

  it('fills {version} and {minimum}', async () => {
    const v = await verdictOf(minOsVersion, options, facts({ device: device({ osVersion: '17.3' }) }));
    expect(v).toMatchObject({ vars: { version: '17.3', minimum: '17.4' } });
  });

  it.each(notCurrentCases)('%s device → unknown', async (_name, f, code) => {
    expect(summary(await verdictOf(minOsVersion, options, facts(f)))).toBe(`unknown ${code}`);
  });

  it.each<[unknown, string]>([
    [{ minimum: { ios: 17.1 } }, 'minimum.ios: quote the version ("17.1")'],
    [{ minimum: { ios: 'seventeen' } }, 'minimum.ios: expected a version like "17.4"'],
    [{ minimum: {} }, 'minimum: expected at least one platform'],
  ])('rejects %j', (raw, message) => {
    expect(() => minOsVersion.parseOptions(raw)).toThrow(message);
  });

  it('compares dotted versions numerically', () => {
    expect(compareVersions(parseVersion('17.10')!, parseVersion('17.4')!)).toBeGreaterThan(0);
    expect(compareVersions(parseVersion('17')!, parseVersion('17.0.0')!)).toBe(0);
    expect(parseVersion('v10.0.19045')).toEqual([10, 0, 19045]);
    expect(parseVersion('beta')).toBeNull();
  });
});

describe('managed-only', () => {
  it.each<[string, Partial<CheckFacts>, string]>([
    ['managed', { device: device({ managed: true }) }, 'pass'],
    ['unmanaged', { device: device({ managed: false }) }, 'fail UNMANAGED_DEVICE'],
    ...notCurrentCases.map(([name, f, code]): [string, Partial<CheckFacts>, string] => [name, f, `unknown ${code}`]),
  ])('%s', async (_name, f, expected) => {
    expect(summary(await verdictOf(managedOnly, undefined, facts(f)))).toBe(expected);
  });

  it('rejects options it does not know', () => {
    expect(() => managedOnly.parseOptions({ strict: true })).toThrow('strict: unknown option (known: none)');
  });
});
