// `{myUrl}` in a check's sentence: the blocked person's console page, from admin.console.publicUrl.
import { evaluatePolicy } from '../../src/policy/engine';
import { myUrlOf } from '../../src/policy/decider';
import type { MailwardenConfig } from '../../src/core/config-types';
import { NOW, compile, device, policyConfig, request, stored, tiktokCheck } from '../fixtures/plugins/policy-fixtures';

test('the sentence carries the /my/ link when the console has a public URL', async () => {
  const check = { ...tiktokCheck, message: 'Remove {app}; see {myUrl} for details.' };
  const compiled = await compile(policyConfig([check]));
  const ctx = { now: NOW, maxReportAgeHours: 24, groups: [], brakeReportOnly: new Set<string>(), refId: 'MW-TEST0001' };
  const facts = stored({ record: device({ apps: ['com.zhiliaoapp.musically'] }) });
  const withLink = await evaluatePolicy(compiled, request(), facts, { ...ctx, myUrl: 'https://access.example.com/my/' });
  expect(withLink.decision.message).toBe('Remove TikTok; see https://access.example.com/my/ for details. Ref MW-TEST0001.');
  const without = await evaluatePolicy(compiled, request(), facts, ctx);
  expect(without.decision.message).toBe('Remove TikTok; see for details. Ref MW-TEST0001.');
});

test('myUrlOf: publicUrl + /my/, only with the self-service page enabled', () => {
  const config = (c: Record<string, unknown>) => ({ admin: { console: { enabled: true, selfService: true, ...c } } }) as unknown as MailwardenConfig;
  expect(myUrlOf(config({ publicUrl: 'https://a.example/' }))).toBe('https://a.example/my/');
  expect(myUrlOf(config({ publicUrl: 'https://a.example', selfService: false }))).toBeUndefined();
  expect(myUrlOf(config({}))).toBeUndefined();
});
