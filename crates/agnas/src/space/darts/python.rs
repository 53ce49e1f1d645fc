//! DARTS-space genotypes in the Python text of the DARTS and AGNAS code bases, so that released cells load as
//! published and search results can be handed back to the Python tools.
//!
//! The accepted language is the subset those `genotypes.py` files use: assignments of literals, names and calls.
//! The whole text is parsed up front, but only the chosen genotype (and what it refers to) is interpreted, so a
//! file may hold genotypes of other spaces (NASNet, AmoebaNet) next to the one asked for.
use super::genotype::{CellGenotype, CellKind, DartsOp, Genotype};
use std::fmt;

/// Where and why a text is not a DARTS-space genotype; `Display` shows the source line with a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The offending token as written; empty at the end of the text.
    pub token: String,
    pub message: String,
    pub source_line: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lines of the official file run to 500 characters; a window keeps the caret on screen.
        const HALF: usize = 60;
        writeln!(f, "line {}, column {}: {}", self.line, self.column, self.message)?;
        let chars: Vec<char> = self.source_line.chars().map(|c| if c == '\t' { ' ' } else { c }).collect();
        let at = self.column.saturating_sub(1).min(chars.len());
        let (from, to) = (at.saturating_sub(HALF), (at + HALF).min(chars.len()));
        let pre = if from > 0 { "..." } else { "" };
        let post = if to < chars.len() { "..." } else { "" };
        let shown: String = chars[from..to].iter().collect();
        write!(f, "    {pre}{shown}{post}\n    {}^", " ".repeat(pre.len() + at - from))
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tk {
    Name,
    Num,
    Str,
    Punct(char),
    Newline,
    End,
}

struct Token {
    kind: Tk,
    text: String,
    /// A string's contents; empty for other tokens.
    value: String,
    line: usize,
    col: usize,
}

fn error(src: &str, tok: &Token, message: String) -> ParseError {
    let source_line = src.lines().nth(tok.line - 1).unwrap_or("").to_string();
    ParseError { line: tok.line, column: tok.col, token: tok.text.clone(), message, source_line }
}

fn found(tok: &Token) -> String {
    match tok.kind {
        Tk::End => "end of text".into(),
        Tk::Newline => "end of line".into(),
        _ => format!("`{}`", tok.text),
    }
}

/// Newlines inside brackets are dropped, as in Python, so that only top-level newlines end a statement.
fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(chars.iter().enumerate().filter(|(_, &c)| c == '\n').map(|(k, _)| k + 1)).collect();
    let token = |kind, start: usize, end: usize, value: String| {
        let line = line_starts.partition_point(|&s| s <= start);
        let text = chars[start..end].iter().collect();
        Token { kind, text, value, line, col: start - line_starts[line - 1] + 1 }
    };
    let (mut toks, mut i, mut depth, mut last_end) = (Vec::<Token>::new(), 0, 0usize, 0);
    while let Some(&c) = chars.get(i) {
        let start = i;
        let mut value = String::new();
        let ident = |k: usize| chars.get(k).is_some_and(|&d| d.is_alphanumeric() || d == '_');
        let kind = match c {
            '\n' | ';' if depth == 0 => {
                i += 1;
                if matches!(toks.last(), None | Some(Token { kind: Tk::Newline, .. })) {
                    continue;
                }
                Tk::Newline
            }
            '#' => {
                while chars.get(i).is_some_and(|&d| d != '\n') {
                    i += 1;
                }
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                // Dotted names (`collections.namedtuple`) stay one token: they are only ever skipped.
                while ident(i)
                    || (chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|&d| d.is_alphabetic() || d == '_'))
                {
                    i += 1;
                }
                Tk::Name
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                i += 1;
                while let Some(&d) = chars.get(i) {
                    let exponent_sign = (d == '+' || d == '-') && matches!(chars[i - 1], 'e' | 'E');
                    if !(d.is_alphanumeric() || d == '_' || d == '.' || exponent_sign) {
                        break;
                    }
                    i += 1;
                }
                Tk::Num
            }
            '\'' | '"' => {
                let quote =
                    || error(src, &token(Tk::Str, start, start + 1, String::new()), "unterminated string".into());
                (i, value) = scan_string(&chars, i).ok_or_else(quote)?;
                Tk::Str
            }
            c if "()[]{},:.=;+-*/%<>!&|^~@".contains(c) => {
                match c {
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                i += 1;
                Tk::Punct(c)
            }
            _ => {
                let tok = token(Tk::Punct(c), start, start + 1, String::new());
                return Err(error(src, &tok, format!("unexpected character `{c}`")));
            }
        };
        if kind != Tk::Newline {
            last_end = i;
        }
        toks.push(token(kind, start, i, value));
    }
    toks.push(token(Tk::End, last_end, last_end, String::new()));
    Ok(toks)
}

/// Returns the index after the closing quote and the contents. Escapes keep the escaped character as is, which is
/// all that op names could ever need; triple quotes are read so that a module docstring does not stop the script.
fn scan_string(chars: &[char], open: usize) -> Option<(usize, String)> {
    let q = *chars.get(open)?;
    let tripled = |k: usize| chars.get(k + 1) == Some(&q) && chars.get(k + 2) == Some(&q);
    let triple = tripled(open);
    let (mut i, mut value) = (open + if triple { 3 } else { 1 }, String::new());
    loop {
        match *chars.get(i)? {
            '\\' => {
                value.push(*chars.get(i + 1)?);
                i += 2;
            }
            c if c == q && (!triple || tripled(i)) => return Some((i + if triple { 3 } else { 1 }, value)),
            '\n' if !triple => return None,
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
}

struct Node {
    tok: usize,
    kind: Kind,
}

enum Kind {
    Name,
    Num(String),
    Str,
    List(Vec<Node>),
    Tuple(Vec<Node>),
    /// Parsed only so that `PARAMS = {...}` does not stop the script; never interpreted.
    Dict,
    Call {
        args: Vec<Node>,
        kwargs: Vec<(usize, Node)>,
    },
}

struct Parser<'t> {
    src: &'t str,
    toks: &'t [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn kind(&self, ahead: usize) -> Tk {
        self.toks.get(self.pos + ahead).map_or(Tk::End, |t| t.kind)
    }

    /// Never moves past the final `End`, so loops that wait for a bracket stop there with an error.
    fn bump(&mut self) -> usize {
        let at = self.pos;
        if at + 1 < self.toks.len() {
            self.pos += 1;
        }
        at
    }

    fn fail(&self, at: usize, expected: &str) -> ParseError {
        let tok = &self.toks[at];
        error(self.src, tok, format!("expected {expected}, found {}", found(tok)))
    }

    fn end_of_statement(&self) -> Result<(), ParseError> {
        match self.kind(0) {
            Tk::Newline | Tk::End => Ok(()),
            _ => Err(self.fail(self.pos, "the end of the statement")),
        }
    }

    fn expr(&mut self) -> Result<Node, ParseError> {
        // No genotype nests this deep, and unbounded recursion on `[[[[...` would overflow the stack.
        const MAX_DEPTH: usize = 64;
        if self.depth == MAX_DEPTH {
            return Err(self.fail(self.pos, &format!("at most {MAX_DEPTH} nested brackets")));
        }
        self.depth += 1;
        let node = self.primary();
        self.depth -= 1;
        node
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let tok = self.bump();
        let kind = match self.toks[tok].kind {
            Tk::Name if self.kind(0) == Tk::Punct('(') => {
                let open = self.bump();
                self.call(open)?
            }
            Tk::Name => Kind::Name,
            Tk::Num => Kind::Num(self.toks[tok].text.clone()),
            Tk::Punct('-') if self.kind(0) == Tk::Num => {
                let digits = self.bump();
                Kind::Num(format!("-{}", self.toks[digits].text))
            }
            Tk::Str => Kind::Str,
            Tk::Punct('[') => {
                let mut items = Vec::new();
                self.elements(tok, ']', |p| p.expr().map(|node| items.push(node)))?;
                Kind::List(items)
            }
            Tk::Punct('(') => {
                let mut items = Vec::new();
                let comma = self.elements(tok, ')', |p| p.expr().map(|node| items.push(node)))?;
                if items.len() == 1 && !comma {
                    return Ok(items.swap_remove(0));
                }
                Kind::Tuple(items)
            }
            Tk::Punct('{') => {
                self.elements(tok, '}', |p| {
                    p.expr()?;
                    if p.kind(0) == Tk::Punct(':') {
                        p.bump();
                        p.expr()?;
                    }
                    Ok(())
                })?;
                Kind::Dict
            }
            _ => return Err(self.fail(tok, "a value")),
        };
        Ok(Node { tok, kind })
    }

    fn call(&mut self, open: usize) -> Result<Kind, ParseError> {
        let (mut args, mut kwargs) = (Vec::new(), Vec::new());
        self.elements(open, ')', |p| {
            if p.kind(0) == Tk::Name && p.kind(1) == Tk::Punct('=') {
                let key = p.bump();
                p.bump();
                kwargs.push((key, p.expr()?));
            } else {
                args.push(p.expr()?);
            }
            Ok(())
        })?;
        Ok(Kind::Call { args, kwargs })
    }

    /// Reads comma-separated elements up to `close`. A missing bracket is usually noticed far from where it
    /// belongs, so the error names the opening one. Returns whether a comma came last, which tells the tuple `(x,)`
    /// from the parenthesized `(x)`.
    fn elements(
        &mut self,
        open: usize,
        close: char,
        mut element: impl FnMut(&mut Self) -> Result<(), ParseError>,
    ) -> Result<bool, ParseError> {
        let mut comma = false;
        while self.kind(0) != Tk::Punct(close) {
            element(self)?;
            comma = self.kind(0) == Tk::Punct(',');
            if comma {
                self.bump();
            } else if self.kind(0) != Tk::Punct(close) {
                let o = &self.toks[open];
                let expected =
                    format!("`,` or `{close}` to close the `{}` at line {}, column {}", o.text, o.line, o.col);
                return Err(self.fail(self.pos, &expected));
            }
        }
        self.bump();
        Ok(comma)
    }
}

/// A value together with the assignments its names may refer to: those before it, as in Python.
#[derive(Clone, Copy)]
struct At<'s> {
    node: &'s Node,
    scope: usize,
}

const GENOTYPE_FIELDS: [&str; 4] = ["normal", "normal_concat", "reduce", "reduce_concat"];

/// Bounds the states a `range(...)` expands to, so that a typo like `range(2, 6000000000)` cannot exhaust memory.
const MAX_RANGE: usize = 1024;

/// The namedtuple a cell of this kind is written as, and its fields.
fn cell_call(kind: CellKind) -> (&'static str, [&'static str; 2]) {
    match kind {
        CellKind::Normal => ("Normal_Genotype", ["normal", "normal_concat"]),
        CellKind::Reduce => ("Reduce_Genotype", ["reduce", "reduce_concat"]),
    }
}

fn stage_kind(slot: usize) -> CellKind {
    if slot.is_multiple_of(2) {
        CellKind::Normal
    } else {
        CellKind::Reduce
    }
}

struct Script<'a> {
    src: &'a str,
    toks: Vec<Token>,
    assigns: Vec<(String, Node)>,
    /// Set when the whole text is one expression rather than a script.
    single: Option<Node>,
}

impl<'a> Script<'a> {
    /// Statements other than `name = value` (imports, calls, augmented assignments) are skipped unparsed.
    fn read(src: &'a str) -> Result<Script<'a>, ParseError> {
        let toks = tokenize(src)?;
        let mut p = Parser { src, toks: &toks, pos: 0, depth: 0 };
        let (mut assigns, mut others) = (Vec::new(), Vec::new());
        while p.kind(0) != Tk::End {
            let start = p.pos;
            if p.kind(0) == Tk::Name && p.kind(1) == Tk::Punct('=') && p.kind(2) != Tk::Punct('=') {
                p.pos += 2;
                let node = p.expr()?;
                p.end_of_statement()?;
                assigns.push((toks[start].text.clone(), node));
            } else {
                others.push(start);
                while !matches!(p.kind(0), Tk::Newline | Tk::End) {
                    p.bump();
                }
            }
            p.bump();
        }
        let single = match (assigns.is_empty(), others.as_slice()) {
            (true, []) => {
                let expected = "a `Genotype(...)`, a list of five cells, or a script assigning one";
                return Err(error(src, &toks[toks.len() - 1], format!("empty text: expected {expected}")));
            }
            (true, &[start]) => {
                p.pos = start;
                let node = p.expr()?;
                p.end_of_statement()?;
                Some(node)
            }
            _ => None,
        };
        Ok(Script { src, toks, assigns, single })
    }

    fn err(&self, tok: usize, message: String) -> ParseError {
        error(self.src, &self.toks[tok], message)
    }

    fn expected(&self, node: &Node, what: &str) -> ParseError {
        self.err(node.tok, format!("expected {what}, found {}", found(&self.toks[node.tok])))
    }

    fn name(&self, node: &Node) -> &str {
        &self.toks[node.tok].text
    }

    fn assignment(&self, j: usize) -> At<'_> {
        At { node: &self.assigns[j].1, scope: j }
    }

    fn resolve<'s>(&'s self, mut at: At<'s>) -> Result<At<'s>, ParseError> {
        while let Kind::Name = at.node.kind {
            let name = self.name(at.node);
            let Some(j) = self.assigns[..at.scope].iter().rposition(|(n, _)| n == name) else {
                return Err(
                    self.err(at.node.tok, format!("unknown name `{name}` (it is not assigned before this point)"))
                );
            };
            at = self.assignment(j);
        }
        Ok(at)
    }

    /// Whether `parse` should take this assignment. Names that do not resolve count as cells, so that a dangling
    /// name in the intended list is reported instead of silently picking an earlier genotype.
    fn is_genotype(&self, at: At) -> bool {
        let Ok(at) = self.resolve(at) else { return false };
        match &at.node.kind {
            Kind::Call { .. } => self.name(at.node) == "Genotype",
            Kind::List(items) | Kind::Tuple(items) => {
                !items.is_empty()
                    && items.iter().all(|node| {
                        self.resolve(At { node, scope: at.scope }).map_or(true, |cell| {
                            matches!(cell.node.kind, Kind::Call { .. })
                                && matches!(self.name(cell.node), "Normal_Genotype" | "Reduce_Genotype")
                        })
                    })
            }
            _ => false,
        }
    }

    fn finish(&self, at: At) -> Result<Genotype, ParseError> {
        let genotype = self.genotype(at)?;
        genotype.validate().map_err(|e| self.err(at.node.tok, e.report()))?;
        Ok(genotype)
    }

    fn genotype(&self, at: At) -> Result<Genotype, ParseError> {
        let at = self.resolve(at)?;
        match &at.node.kind {
            Kind::Call { args, kwargs } if self.name(at.node) == "Genotype" => {
                let [normal, normal_concat, reduce, reduce_concat] = self.bind(at, GENOTYPE_FIELDS, args, kwargs)?;
                let normal = self.cell(normal, normal_concat, "normal")?;
                Ok(Genotype::NormalReduce { normal, reduce: self.cell(reduce, reduce_concat, "reduce")? })
            }
            Kind::List(items) | Kind::Tuple(items) => self.stages(at, items),
            _ => Err(self.expected(at.node, "a `Genotype(...)` or a list of five cells")),
        }
    }

    /// Names are resolved and the entries checked to be cells before the count, so that a list of something else
    /// (say `PRIMITIVES`) is not reported as having the wrong length.
    fn stages(&self, list: At, items: &[Node]) -> Result<Genotype, ParseError> {
        let mut calls = Vec::new();
        for node in items {
            let call = self.resolve(At { node, scope: list.scope })?;
            let cell = match (&call.node.kind, self.name(call.node)) {
                (Kind::Call { args, kwargs }, "Normal_Genotype") => (CellKind::Normal, args, kwargs),
                (Kind::Call { args, kwargs }, "Reduce_Genotype") => (CellKind::Reduce, args, kwargs),
                _ => return Err(self.expected(call.node, "`Normal_Genotype(...)` or `Reduce_Genotype(...)`")),
            };
            calls.push((call, cell));
        }
        if items.len() != 5 {
            let msg =
                format!("a stage list needs 5 cells (normal, reduce, normal, reduce, normal), found {}", items.len());
            return Err(self.err(list.node.tok, msg));
        }
        let mut cells = Vec::new();
        for (slot, (item, (call, (kind, args, kwargs)))) in items.iter().zip(calls).enumerate() {
            if kind != stage_kind(slot) {
                let (want, got) = (cell_call(stage_kind(slot)).0, cell_call(kind).0);
                let msg = format!(
                    "stage cell {slot} must be a `{want}` (normal, reduce, normal, reduce, normal), found `{got}`"
                );
                return Err(self.err(item.tok, msg));
            }
            let fields = cell_call(kind).1;
            let [ops, concat] = self.bind(call, fields, args, kwargs)?;
            cells.push(self.cell(ops, concat, fields[0])?);
        }
        Ok(Genotype::Stages { cells })
    }

    /// Matches positional and keyword arguments to the namedtuple's fields, as Python would.
    fn bind<'s, const N: usize>(
        &'s self,
        call: At<'s>,
        fields: [&str; N],
        args: &'s [Node],
        kwargs: &'s [(usize, Node)],
    ) -> Result<[At<'s>; N], ParseError> {
        let func = self.name(call.node);
        let (mut out, mut given) = ([call; N], [false; N]);
        if let Some(extra) = args.get(N) {
            return Err(self.err(extra.tok, format!("`{func}` takes {N} arguments ({})", fields.join(", "))));
        }
        for (k, node) in args.iter().enumerate() {
            (out[k], given[k]) = (At { node, scope: call.scope }, true);
        }
        for (key, node) in kwargs {
            let name = &self.toks[*key].text;
            let Some(k) = fields.iter().position(|f| f == name) else {
                return Err(self.err(*key, format!("unknown keyword `{name}` (`{func}` takes {})", fields.join(", "))));
            };
            if given[k] {
                return Err(self.err(*key, format!("`{name}` is given twice")));
            }
            (out[k], given[k]) = (At { node, scope: call.scope }, true);
        }
        match given.iter().position(|g| !g) {
            Some(k) => Err(self.err(call.node.tok, format!("`{func}(...)` is missing `{}`", fields[k]))),
            None => Ok(out),
        }
    }

    /// Checks the cell with `CellGenotype::validate` and blames the pair or state that breaks it.
    fn cell(&self, ops_arg: At, concat_arg: At, label: &str) -> Result<CellGenotype, ParseError> {
        let (mut ops, mut input_toks) = (Vec::new(), Vec::new());
        for item in self.seq(self.resolve(ops_arg)?, "a list of (op, input) pairs")? {
            let pair = self.resolve(item)?;
            let items = self.seq(pair, "an (op, input) pair")?;
            let [op, input] = items[..] else {
                let msg = format!("expected an (op, input) pair of 2 values, found {}", items.len());
                return Err(self.err(pair.node.tok, msg));
            };
            let (input, tok) = self.int(input, "input index")?;
            ops.push((self.op(op)?, input));
            input_toks.push(tok);
        }
        let concat = self.concat(concat_arg)?;
        let cell = CellGenotype { ops, concat: concat.iter().map(|&(state, _)| state).collect() };
        cell.validate().map_err(|e| {
            let bad_pair = cell.ops.iter().enumerate().position(|(k, &(_, input))| input >= k / 2 + 2);
            let bad_state = concat.iter().find(|&&(state, _)| state >= cell.steps() + 2);
            let tok = match (bad_pair, bad_state) {
                _ if cell.ops.is_empty() || cell.ops.len() % 2 == 1 => ops_arg.node.tok,
                (Some(k), _) => input_toks[k],
                (None, Some(&(_, tok))) => tok,
                (None, None) => concat_arg.node.tok,
            };
            self.err(tok, format!("invalid {label} cell: {e}"))
        })?;
        Ok(cell)
    }

    fn seq<'s>(&self, at: At<'s>, what: &str) -> Result<Vec<At<'s>>, ParseError> {
        match &at.node.kind {
            Kind::List(items) | Kind::Tuple(items) => {
                Ok(items.iter().map(|node| At { node, scope: at.scope }).collect())
            }
            _ => Err(self.expected(at.node, what)),
        }
    }

    fn op(&self, at: At) -> Result<DartsOp, ParseError> {
        let at = self.resolve(at)?;
        match at.node.kind {
            Kind::Str => {
                self.toks[at.node.tok].value.parse().map_err(|e: crate::Error| self.err(at.node.tok, e.to_string()))
            }
            _ => Err(self.expected(at.node, "an op name in quotes")),
        }
    }

    /// The value and the token to blame if it turns out out of range.
    fn int(&self, at: At, what: &str) -> Result<(usize, usize), ParseError> {
        let at = self.resolve(at)?;
        match &at.node.kind {
            Kind::Num(text) => text
                .parse()
                .map(|v| (v, at.node.tok))
                .map_err(|_| self.err(at.node.tok, format!("expected a non-negative integer {what}, found `{text}`"))),
            _ => Err(self.expected(at.node, &format!("an integer {what}"))),
        }
    }

    /// The concatenated states, each with the token to blame if it names a state the cell lacks.
    fn concat(&self, at: At) -> Result<Vec<(usize, usize)>, ParseError> {
        let at = self.resolve(at)?;
        let arg = |node| At { node, scope: at.scope };
        let expected = "a concat list or `range(start, stop)`";
        match &at.node.kind {
            Kind::Call { args, kwargs } if kwargs.is_empty() => {
                let (start, stop) = match (self.name(at.node), args.as_slice()) {
                    ("list", [inner]) => return self.concat(arg(inner)),
                    ("range", [stop]) => (0, self.int(arg(stop), "range stop")?),
                    ("range", [start, stop]) => {
                        (self.int(arg(start), "range start")?.0, self.int(arg(stop), "range stop")?)
                    }
                    _ => return Err(self.expected(at.node, expected)),
                };
                let (stop, tok) = stop;
                if stop.saturating_sub(start) > MAX_RANGE {
                    return Err(
                        self.err(tok, format!("expected a range of at most {MAX_RANGE} states, found `{stop}`"))
                    );
                }
                Ok((start..stop).map(|state| (state, tok)).collect())
            }
            Kind::List(_) | Kind::Tuple(_) => {
                self.seq(at, expected)?.into_iter().map(|s| self.int(s, "concat state")).collect()
            }
            _ => Err(self.expected(at.node, expected)),
        }
    }
}

/// Reads a genotype: the text's only expression, or else the last assignment holding a genotype (as the official
/// `genotypes.py`, whose final `AGNAS = [...]` is the released architecture).
pub fn parse(text: &str) -> Result<Genotype, ParseError> {
    let script = Script::read(text)?;
    if let Some(node) = &script.single {
        return script.finish(At { node, scope: 0 });
    }
    match (0..script.assigns.len()).rev().map(|j| script.assignment(j)).find(|&at| script.is_genotype(at)) {
        Some(at) => script.finish(at),
        None => Err(script.err(0, "no assignment holds a `Genotype(...)` or a list of five cells".into())),
    }
}

/// Reads the genotype assigned to `name` (its last assignment, as Python would see it).
pub fn parse_named(text: &str, name: &str) -> Result<Genotype, ParseError> {
    let script = Script::read(text)?;
    match script.assigns.iter().rposition(|(n, _)| n == name) {
        Some(j) => script.finish(script.assignment(j)),
        None => {
            let known: Vec<&str> = (0..script.assigns.len())
                .filter(|&j| script.is_genotype(script.assignment(j)))
                .map(|j| script.assigns[j].0.as_str())
                .collect();
            Err(script.err(0, format!("no assignment named `{name}` (genotypes here: {})", known.join(", "))))
        }
    }
}

fn pairs(ops: &[(DartsOp, usize)]) -> String {
    format!("[{}]", ops.iter().map(|(op, input)| format!("('{op}', {input})")).collect::<Vec<_>>().join(", "))
}

fn ints(states: &[usize]) -> String {
    format!("[{}]", states.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

fn cell_line(k: usize, kind: CellKind, cell: &CellGenotype) -> String {
    let contiguous = cell.concat.windows(2).all(|w| w[1] == w[0] + 1);
    let concat = match (cell.concat.first(), cell.concat.last()) {
        (Some(first), Some(last)) if contiguous => format!("range({first}, {})", last + 1),
        _ => ints(&cell.concat),
    };
    let (call, [ops_field, concat_field]) = cell_call(kind);
    format!("Cell_{k} = {call}({ops_field}={}, {concat_field}={concat})", pairs(&cell.ops))
}

fn script(lines: Vec<String>, list_name: &str, stages: impl Iterator<Item = usize>) -> String {
    let names: Vec<String> = stages.map(|k| format!("Cell_{k}")).collect();
    format!("{}\n{list_name} = [{}]\n", lines.join("\n"), names.join(", "))
}

/// The DARTS form is written as `print(genotype)` shows it in DARTS, so that logs and files compare as text; the
/// stage form as the AGNAS release writes its cells, one assignment per cell and a final `AGNAS` list.
pub fn to_python(g: &Genotype) -> String {
    match g {
        Genotype::NormalReduce { normal, reduce } => format!(
            "Genotype(normal={}, normal_concat={}, reduce={}, reduce_concat={})",
            pairs(&normal.ops),
            ints(&normal.concat),
            pairs(&reduce.ops),
            ints(&reduce.concat)
        ),
        Genotype::Stages { cells } => {
            let lines = cells.iter().enumerate().map(|(k, cell)| cell_line(k, stage_kind(k), cell)).collect();
            script(lines, "AGNAS", 0..cells.len())
        }
    }
}

/// A search derives one genotype per supernet cell, but the evaluation network takes five; the official code
/// releases all cells and picks the stage cells by name, which `stages` reproduces (e.g. `[0, 2, 3, 5, 6]`).
pub fn cells_to_python(cells: &[(CellKind, CellGenotype)], stages: &[usize], list_name: &str) -> String {
    let lines = cells.iter().enumerate().map(|(k, (kind, cell))| cell_line(k, *kind, cell)).collect();
    script(lines, list_name, stages.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official AGNAS `genotypes.py`, verbatim.
    const OFFICIAL: &str = r#"from collections import namedtuple
Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')
Normal_Genotype = namedtuple('Normal_Genotype', 'normal normal_concat')
Reduce_Genotype = namedtuple('Reduce_Genotype', 'reduce reduce_concat')
PARAMS = {'conv_3x1_1x3':864, 'conv_7x1_1x7':2016, 'sep_conv_7x7': 1464, 'conv 3x3':1296, 'sep_conv_5x5': 888, 'sep_conv_3x3':504, 'dil_conv_5x5': 444, 'conv 1x1':144, 'dil_conv_3x3':252, 'skip_connect':0, 'none':0, 'max_pool_3x3':0, 'avg_pool_3x3':0}
PRIMITIVES = [
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5',
    'skip_connect',
    'avg_pool_3x3',
    'max_pool_3x3',
    'none'
]
NASNet = Genotype(
  normal = [
    ('sep_conv_5x5', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_5x5', 0),
    ('sep_conv_3x3', 0),
    ('avg_pool_3x3', 1),
    ('skip_connect', 0),
    ('avg_pool_3x3', 0),
    ('avg_pool_3x3', 0),
    ('sep_conv_3x3', 1),
    ('skip_connect', 1),
  ],
  normal_concat = [2, 3, 4, 5, 6],
  reduce = [
    ('sep_conv_5x5', 1),
    ('sep_conv_7x7', 0),
    ('max_pool_3x3', 1),
    ('sep_conv_7x7', 0),
    ('avg_pool_3x3', 1),
    ('sep_conv_5x5', 0),
    ('skip_connect', 3),
    ('avg_pool_3x3', 2),
    ('sep_conv_3x3', 2),
    ('max_pool_3x3', 1),
  ],
  reduce_concat = [4, 5, 6],
)
DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])
DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])
DARTS = DARTS_V1

Cell_0 = Normal_Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('skip_connect', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 3), ('dil_conv_5x5', 0), ('sep_conv_3x3', 3)], normal_concat=range(2, 6))
Cell_2 = Reduce_Genotype(reduce=[('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('skip_connect', 0), ('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1)], reduce_concat=range(2, 6))
Cell_3 = Normal_Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1), ('dil_conv_5x5', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], normal_concat=range(2, 6))
Cell_5 = Reduce_Genotype(reduce=[('skip_connect', 1), ('skip_connect', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 0), ('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('avg_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))
Cell_6 = Normal_Genotype(normal=[('skip_connect', 0), ('dil_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('max_pool_3x3', 2), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1)], normal_concat=range(2, 6))
AGNAS = [Cell_0, Cell_2, Cell_3, Cell_5, Cell_6]
"#;

    /// Two-node cells keep the hand-written inputs short.
    const N: &str = "[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('dil_conv_3x3', 2), ('dil_conv_5x5', 1)]";
    const R: &str = "[('max_pool_3x3', 0), ('skip_connect', 1), ('none', 2), ('avg_pool_3x3', 0)]";

    fn small(kind: CellKind) -> CellGenotype {
        use DartsOp::*;
        let ops = match kind {
            CellKind::Normal => vec![(SepConv3x3, 0), (SepConv5x5, 1), (DilConv3x3, 2), (DilConv5x5, 1)],
            CellKind::Reduce => vec![(MaxPool3x3, 0), (SkipConnect, 1), (None, 2), (AvgPool3x3, 0)],
        };
        CellGenotype { ops, concat: vec![2, 3] }
    }

    fn builtin(name: &str) -> Genotype {
        Genotype::builtin(name).unwrap()
    }

    /// Line and column of the first `needle`, so that expected positions are not counted by hand.
    fn pos(text: &str, needle: &str) -> (usize, usize) {
        let at = text.find(needle).unwrap_or_else(|| panic!("`{needle}` not in the text"));
        let line_start = text[..at].rfind('\n').map_or(0, |k| k + 1);
        (text[..at].matches('\n').count() + 1, text[line_start..at].chars().count() + 1)
    }

    fn fails_at(text: &str, (line, column): (usize, usize), message: &str) -> ParseError {
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.column), (line, column), "{e}");
        assert!(e.message.contains(message), "wanted `{message}` in:\n{e}");
        e
    }

    fn fails(text: &str, needle: &str, message: &str) -> ParseError {
        fails_at(text, pos(text, needle), message)
    }

    /// Checks that the rendered snippet puts the caret under `needle`.
    fn caret_under(e: &ParseError, needle: &str) {
        let shown = e.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[2].find('^'), lines[1].find(needle), "{shown}");
    }

    #[test]
    fn the_official_genotypes_file() {
        assert_eq!(parse_named(OFFICIAL, "AGNAS").unwrap(), builtin("agnas"));
        assert_eq!(parse_named(OFFICIAL, "DARTS_V2").unwrap(), builtin("darts_v2"));
        assert_eq!(parse_named(OFFICIAL, "DARTS").unwrap(), builtin("darts_v1"));
        assert_eq!(parse(OFFICIAL).unwrap(), builtin("agnas"));
        let e = parse_named(OFFICIAL, "NASNet").unwrap_err();
        assert_eq!((e.line, e.column, e.token.as_str()), (32, 6, "'sep_conv_7x7'"), "{e}");
        assert!(e.message.starts_with("unknown op `sep_conv_7x7`"), "{e}");
        let e = parse_named(OFFICIAL, "PRIMITIVES").unwrap_err();
        assert_eq!((e.line, e.column), (7, 5), "{e}");
        assert!(e.message.contains("expected `Normal_Genotype(...)` or `Reduce_Genotype(...)`, found `'sep_"), "{e}");
        // Far along a 500-character line, the snippet is a window around the token.
        let bad = OFFICIAL.replace("('max_pool_3x3', 1)], reduce_concat", "('max_pool_3x3', 9)], reduce_concat");
        let e = parse_named(&bad, "DARTS_V2").unwrap_err();
        assert_eq!((e.line, e.column), pos(&bad, "9)], reduce_concat"), "{e}");
        assert!(e.message.starts_with("invalid reduce cell: pair 7 (max_pool_3x3, 9)"), "{e}");
        caret_under(&e, "9)], reduce_concat");
        assert!(e.to_string().lines().nth(1).unwrap().starts_with("    ...") && e.to_string().len() < 400, "{e}");
        let e = parse_named(OFFICIAL, "ENAS").unwrap_err();
        assert!(e.message.contains("genotypes here: NASNet, DARTS_V1, DARTS_V2, DARTS, AGNAS"), "{e}");
    }

    #[test]
    fn darts_form_prints_as_darts_does() {
        for (name, var) in [("darts_v1", "DARTS_V1 = "), ("darts_v2", "DARTS_V2 = ")] {
            let line = OFFICIAL.lines().find(|l| l.starts_with(var)).unwrap();
            assert_eq!(to_python(&builtin(name)), line[var.len()..]);
        }
    }

    #[test]
    fn stage_form_prints_as_the_release_does() {
        let text = to_python(&builtin("agnas"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        for (ours, theirs) in [0, 2, 3, 5, 6].into_iter().enumerate() {
            let official = OFFICIAL.lines().find(|l| l.starts_with(&format!("Cell_{theirs} = "))).unwrap();
            assert_eq!(lines[ours].split_once(" = ").unwrap().1, official.split_once(" = ").unwrap().1);
        }
        assert_eq!(lines[5], "AGNAS = [Cell_0, Cell_1, Cell_2, Cell_3, Cell_4]");
    }

    #[test]
    fn round_trips() {
        for name in ["agnas", "darts_v1", "darts_v2"] {
            assert_eq!(parse(&to_python(&builtin(name))).unwrap(), builtin(name), "{name}");
        }
        let Genotype::Stages { cells: agnas } = builtin("agnas") else { panic!("agnas is in stage form") };
        // Eight search cells with reductions at 2 and 5; one with a concat that is not a range.
        let mut cells: Vec<(CellKind, CellGenotype)> = (0..8)
            .map(|i| {
                let kind = CellKind::of(i, 8);
                let slot = if kind == CellKind::Reduce { [1, 3][i % 2] } else { [0, 2, 4][i % 3] };
                (kind, agnas[slot].clone())
            })
            .collect();
        cells[3].1.concat = vec![2, 4, 5];
        let text = cells_to_python(&cells, &[0, 2, 3, 5, 6], "AGNAS");
        assert!(text.contains("\nCell_5 = Reduce_Genotype(reduce=[('skip_connect', 1), "), "{text}");
        assert!(text.contains(", normal_concat=[2, 4, 5])\n") && text.contains(", normal_concat=range(2, 6))\n"));
        assert!(text.ends_with("\nAGNAS = [Cell_0, Cell_2, Cell_3, Cell_5, Cell_6]\n"), "{text}");
        let want = [0, 2, 3, 5, 6].iter().map(|&i| cells[i].1.clone()).collect();
        assert_eq!(parse(&text).unwrap(), Genotype::Stages { cells: want });
    }

    #[test]
    fn accepts_the_python_spellings() {
        let want = Genotype::NormalReduce { normal: small(CellKind::Normal), reduce: small(CellKind::Reduce) };
        let texts = [
            format!("Genotype(normal={N}, normal_concat=[2, 3], reduce={R}, reduce_concat=range(2, 4))"),
            format!("DARTS_V2 = Genotype({N}, range(2,4), {R}, list(range(2, 4)))\n"),
            "import x; G = Genotype(  # keywords in any order\n    reduce_concat=(2, 3,),\n    \
             reduce=[[\"max_pool_3x3\", 0], ('skip_connect', 1), ('none', 2), (\"avg_pool_3x3\", 0),],\n    \
             normal_concat=[2, 3],  # a trailing comment\n    normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1),\n\t\
             ('dil_conv_3x3', 2), ('dil_conv_5x5', 1)],\n)\nx = {'a': -1.5e-3, \"b\": [None]}\nprint(G)\n"
                .to_string(),
        ];
        for text in &texts {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
        let (n, r) = (small(CellKind::Normal), small(CellKind::Reduce));
        let nc = format!("Normal_Genotype(normal={N}, normal_concat=range(2, 4))");
        let rc = format!("Reduce_Genotype(reduce_concat=[2, 3], reduce={R})");
        let stages = Genotype::Stages { cells: vec![n.clone(), r.clone(), n, r, small(CellKind::Normal)] };
        assert_eq!(parse(&format!("[{nc}, {rc}, {nc}, {rc}, {nc},]")).unwrap(), stages);
    }

    #[test]
    fn errors_point_at_the_token() {
        let text = format!(
            "Genotype(normal=[('sep_conv_9x9', 0), ('sep_conv_3x3', 1)], normal_concat=[2], \
             reduce={R}, reduce_concat=[2, 3])"
        );
        let e = fails(&text, "'sep_conv_9x9'", "unknown op `sep_conv_9x9` (the DARTS space has sep_conv_3x3, ");
        assert!(e.to_string().starts_with("line 1, column 19: unknown op `sep_conv_9x9`"), "{e}");
        caret_under(&e, "'sep_conv_9x9'");

        let pair = |p: &str| {
            format!("Genotype(normal=[('sep_conv_3x3', 0), {p}], normal_concat=[2], reduce={R}, reduce_concat=[2])")
        };
        fails(&pair("('skip_connect', 'one')"), "'one'", "expected an integer input index, found `'one'`");
        fails(&pair("('skip_connect', 1.5)"), "1.5", "expected a non-negative integer input index, found `1.5`");
        fails(&pair("('skip_connect', 2)"), "2)", "invalid normal cell: pair 1 (skip_connect, 2) feeds node 2");
        fails(&pair("('skip_connect',)"), "('skip_connect',)", "expected an (op, input) pair of 2 values, found 1");
        fails(
            &format!("Genotype(normal={N}, normal_concat=[2, 9], reduce={R}, reduce_concat=[2])"),
            "9",
            "invalid normal cell: concat names state 9",
        );

        fails(
            "Genotype(normal=[('sep_conv_3x3', 0]",
            "]",
            "expected `,` or `)` to close the `(` at line 1, column 18, found `]`",
        );
        fails(
            "X = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)\n    normal_concat=[2])",
            "normal_concat",
            "expected `,` or `]` to close the `[` at line 1, column 21, found `normal_concat`",
        );
        fails_at(
            "AGNAS = [Cell_0, Cell_2",
            (1, 24),
            "`,` or `]` to close the `[` at line 1, column 9, found end of text",
        );
        fails(
            &format!("Genotype(normall={N}, normal_concat=[2])"),
            "normall",
            "unknown keyword `normall` (`Genotype` takes normal, ",
        );
        fails(&format!("Genotype({N}, normal=[2])"), "normal=", "`normal` is given twice");
        fails(&format!("G = Genotype({N}, [2, 3])"), "Genotype", "`Genotype(...)` is missing `reduce`");

        let cells = format!(
            "Cell_0 = Normal_Genotype(normal={N}, normal_concat=[2, 3])\n\
             Cell_1 = Reduce_Genotype(reduce={R}, reduce_concat=[2, 3])\n"
        );
        fails(&format!("{cells}AGNAS = [Cell_9]\n"), "Cell_9", "unknown name `Cell_9`");
        fails(
            &format!("{cells}AGNAS = [Cell_0, Cell_1, Cell_0, Cell_1]"),
            "[Cell_0",
            "needs 5 cells (normal, reduce, normal, reduce, normal), found 4",
        );
        fails(
            &format!("{cells}AGNAS = [Cell_0, Cell_1, Cell_1, Cell_1, Cell_0]"),
            "Cell_1, Cell_1, Cell_0]",
            "stage cell 2 must be a `Normal_Genotype`",
        );
        let two =
            format!("[Normal_Genotype(normal={N}, normal_concat=[2]), Reduce_Genotype(reduce={R}, reduce_concat=[2])]");
        fails(&two, "[Normal", "found 2");

        for empty in ["", "\n  # nothing here\n"] {
            fails_at(empty, (1, 1), "empty text");
        }
        fails("x = 'unclosed\n", "'unclosed", "unterminated string");
        fails("G = $", "$", "unexpected character `$`");
        let e = parse_named(&cells, "AGNAS").unwrap_err();
        assert!(e.message.contains("no assignment named `AGNAS`"), "{e}");
    }
}
