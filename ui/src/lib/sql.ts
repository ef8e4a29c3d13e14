// A tiny SQL highlighter for approval and audit views: splits text into tokens (comments,
// strings, dollar-quoted bodies, numbers, keywords, identifiers, punctuation) and tags each
// with a class. It never drops or changes a character: joining the tokens gives the input back,
// so what the approver reads is exactly what will run.

export type TokenKind = 'keyword' | 'string' | 'number' | 'comment' | 'ident' | 'punct' | 'space';
export interface Token {
  kind: TokenKind;
  text: string;
}

const KEYWORDS = new Set(
  (
    'select from where and or not insert into values update set delete returning join left right inner ' +
    'outer full cross on using group by order having limit offset as distinct union all except intersect ' +
    'create table drop alter add column index view truncate grant revoke to with recursive case when then ' +
    'else end is null true false in exists between like ilike begin commit rollback copy explain analyze ' +
    'primary key references default constraint unique check cascade restrict if schema function returns ' +
    'language do declare asc desc nulls first last for lateral window over partition role user password ' +
    'vacuum security definer execute prepare deallocate savepoint release show reset system'
  ).split(' '),
);

const RULES: [TokenKind, RegExp][] = [
  ['space', /\s+/y],
  ['comment', /--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
  ['string', /[eE]'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)|'(?:[^']|'')*(?:'|$)/y],
  ['string', /\$([A-Za-z_][A-Za-z_0-9]*)?\$[\s\S]*?(?:\$\1\$|$)/y],
  ['ident', /"(?:[^"]|"")*(?:"|$)/y],
  ['number', /\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?/y],
  ['ident', /[A-Za-z_\u0080-\uffff][A-Za-z_0-9$\u0080-\uffff]*/y],
  ['punct', /[\s\S]/y],
];

export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    for (const [kind, re] of RULES) {
      re.lastIndex = i;
      const m = re.exec(sql);
      if (m && m[0].length > 0) {
        const text = m[0];
        const k = kind === 'ident' && KEYWORDS.has(text.toLowerCase()) ? 'keyword' : kind;
        const last = out[out.length - 1];
        if (last && last.kind === k && (k === 'punct' || k === 'space')) last.text += text;
        else out.push({ kind: k, text });
        i += text.length;
        break;
      }
    }
  }
  return out;
}
