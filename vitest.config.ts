import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real Kubernetes control plane for the run (built once, cached by its sources' hash).
    globalSetup: ['test/support/cluster/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Real services start per file; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // Test helpers create AWS SDK clients directly; the CLI silences this notice itself.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    // The JSON file lets .ci/run print a plain 'N passed, N failed' closing line.
    reporters: ['default', ['json', { outputFile: '.test-results/vitest.json' }]],
  },
});
