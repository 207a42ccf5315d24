import path from 'node:path';
import ts from 'typescript';

/** Where a code came from, for the message of a failing test. */
export interface FoundCode {
  readonly code: string;
  readonly at: string;
}

const root = path.resolve(import.meta.dirname, '../..');

/**
 * Every `code` the API can answer, read from the source with TypeScript's
 * checker: the code argument of each `new HttpProblem(…)`. A code is a string
 * literal, a union of literals (the checker's type of `error.code`), a
 * parameter (followed to each call of its function), an `a ?? b` or
 * `c ? a : b`, or an entry of an object literal (`genericCodes[status]`).
 * Anything else throws: a code this cannot read is a code the README could
 * miss.
 */
export function problemCodesInSource(): FoundCode[] {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (config === undefined) throw new Error('tsconfig.json cannot be read');
  const files = config.fileNames.filter((file) => file.startsWith(path.join(root, 'src') + path.sep));
  const program = ts.createProgram(files, config.options);
  const checker = program.getTypeChecker();
  const found: FoundCode[] = [];

  const where = (node: ts.Node): string => {
    const source = node.getSourceFile();
    const { line } = source.getLineAndCharacterOfPosition(node.getStart());
    return `${path.relative(root, source.fileName)}:${line + 1}`;
  };

  const codesOf = (expression: ts.Expression): string[] => {
    const type = checker.getTypeAtLocation(expression);
    const members = type.isUnion() ? type.types : [type];
    if (members.every((member) => member.isStringLiteral())) return members.map((member) => (member as ts.StringLiteralType).value);
    if (ts.isParenthesizedExpression(expression)) return codesOf(expression.expression);
    if (ts.isBinaryExpression(expression) && expression.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken) {
      return [...codesOf(expression.left), ...codesOf(expression.right)];
    }
    if (ts.isConditionalExpression(expression)) return [...codesOf(expression.whenTrue), ...codesOf(expression.whenFalse)];
    if (ts.isElementAccessExpression(expression)) return objectLiteralValues(expression.expression);
    if (ts.isIdentifier(expression)) return parameterArguments(expression);
    throw new Error(`cannot tell which codes ${where(expression)} answers: ${expression.getText()}`);
  };

  /** The values of the object literal an identifier was declared with. */
  const objectLiteralValues = (expression: ts.Expression): string[] => {
    const declaration = checker.getSymbolAtLocation(expression)?.valueDeclaration;
    if (declaration === undefined || !ts.isVariableDeclaration(declaration) || declaration.initializer === undefined || !ts.isObjectLiteralExpression(declaration.initializer)) {
      throw new Error(`cannot tell which codes ${where(expression)} answers: ${expression.getText()}`);
    }
    return declaration.initializer.properties.flatMap((property) => (ts.isPropertyAssignment(property) ? codesOf(property.initializer) : []));
  };

  /** A function's parameter: the same argument of every call of that function. */
  const parameterArguments = (identifier: ts.Identifier): string[] => {
    const parameter = checker.getSymbolAtLocation(identifier)?.valueDeclaration;
    const fn = parameter?.parent;
    if (parameter === undefined || !ts.isParameter(parameter) || fn === undefined || !ts.isFunctionLike(fn)) {
      throw new Error(`cannot tell which codes ${where(identifier)} answers: ${identifier.getText()}`);
    }
    const position = fn.parameters.indexOf(parameter);
    const named = ts.isVariableDeclaration(fn.parent) ? fn.parent.name : 'name' in fn ? fn.name : undefined;
    const fnSymbol = named !== undefined && ts.isIdentifier(named) ? checker.getSymbolAtLocation(named) : undefined;
    if (fnSymbol === undefined) throw new Error(`cannot find the calls of the function around ${where(identifier)}`);
    const codes: string[] = [];
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && checker.getSymbolAtLocation(node.expression) === fnSymbol) {
        const argument = node.arguments[position];
        if (argument !== undefined) codes.push(...codesOf(argument));
      }
      ts.forEachChild(node, visit);
    };
    visit(fn.getSourceFile());
    return codes;
  };

  for (const source of program.getSourceFiles()) {
    if (!files.includes(source.fileName)) continue;
    const visit = (node: ts.Node): void => {
      if (ts.isNewExpression(node) && node.expression.getText() === 'HttpProblem') {
        const argument = node.arguments?.[1];
        if (argument === undefined) throw new Error(`new HttpProblem without a code at ${where(node)}`);
        for (const code of codesOf(argument)) found.push({ code, at: where(node) });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}
