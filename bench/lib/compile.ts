import path from 'node:path';
import ts from 'typescript';

/**
 * Compiles `entry` (a path relative to `root`) and the project files it
 * imports into `bench/out/compiled/`, with the project's compiler options,
 * and returns the emitted entry. A process whose memory is measured then runs
 * under plain node, as the service does from `dist/`, without a TypeScript
 * loader whose thread and heap would count against it.
 */
export function compileForNode(root: string, entry: string): string {
  const outDir = path.join(root, 'bench/out/compiled');
  const { config } = ts.readConfigFile(path.join(root, 'tsconfig.json'), (file) => ts.sys.readFile(file));
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, root);
  const program = ts.createProgram([path.join(root, entry)], { ...options, noEmit: false, sourceMap: false, rootDir: root, outDir });
  const result = program.emit();
  if (result.emitSkipped) {
    throw new Error(ts.formatDiagnostics(result.diagnostics, { getCanonicalFileName: (name) => name, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
  }
  return path.join(outDir, entry.replace(/\.ts$/, '.js'));
}
