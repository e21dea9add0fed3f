#!/usr/bin/env node
import { runMain } from '@moltage/core';
import { runBridge } from './main.js';

// `node apps/bridge/dist/main-cli.js`: the bridge as a process, configured by the environment.
runMain('bridge', () => runBridge());
