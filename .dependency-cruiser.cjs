/** The architecture rules `npm test` enforces (dependency-cruiser). */
module.exports = {
  forbidden: [
    {
      name: 'domain-is-pure',
      comment: 'src/domain is plain TypeScript: no framework, no runtime, no I/O, nothing from modules/ or infra/.',
      severity: 'error',
      from: { path: '^src/domain' },
      to: {
        pathNot: '^src/domain',
      },
    },
    {
      name: 'infra-does-not-use-application',
      comment: 'Adapters implement domain ports; they never reach into the application modules.',
      severity: 'error',
      from: { path: '^src/infra' },
      to: { path: '^src/modules' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
