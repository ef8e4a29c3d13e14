// `npm test`: the UI's component tests in test/, against happy-dom, with the build's settings
// (vite.config.ts) underneath.
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vite.config';

export default mergeConfig(
  base,
  defineConfig({
    test: {
      environment: 'happy-dom',
      include: ['test/**/*.test.{ts,tsx}'],
    },
  }),
);
