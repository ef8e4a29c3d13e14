// Asking before something that cannot be undone (revoke, rotate, remove, end a connection), as
// an in-page dialog: the browser's own confirm()/prompt() are not available in every desktop
// web view, and cannot be styled or labelled. `ask()` returns a promise; `<ConfirmHost/>`
// (mounted once by the app) shows the dialog.
import { useEffect, useRef, useState } from 'preact/hooks';

export interface Ask {
  title: string;
  message?: string;
  /** The confirming button's text, e.g. "Revoke". */
  confirm: string;
  /** Ask for a line of text too (its label); the promise then resolves to it. */
  input?: string;
}
type Pending = Ask & { resolve: (v: string | null) => void };

let show: ((p: Pending | null) => void) | null = null;

/** Resolves to the text typed (or "" without `input`) when confirmed, null when cancelled. */
export function ask(a: Ask): Promise<string | null> {
  return new Promise((resolve) => {
    if (!show) return resolve(null);
    show({ ...a, resolve });
  });
}

export function ConfirmHost() {
  const [p, setP] = useState<Pending | null>(null);
  const [text, setText] = useState('');
  const back = useRef<HTMLElement | null>(null);
  const box = useRef<HTMLFormElement>(null);
  useEffect(() => {
    show = (next) => {
      back.current = document.activeElement as HTMLElement | null;
      setText('');
      setP(next);
    };
    return () => {
      show = null;
    };
  }, []);
  useEffect(() => {
    if (p) box.current?.querySelector<HTMLElement>('input, button.primary')?.focus();
  }, [p]);
  if (!p) return null;
  const done = (v: string | null) => {
    p.resolve(v);
    setP(null);
    // Focus goes back where it was, so keyboard users keep their place.
    back.current?.focus?.();
  };
  return (
    <div class="modal" role="alertdialog" aria-modal="true" aria-labelledby="confirm-title" aria-describedby="confirm-message">
      <form
        class="card"
        ref={box}
        onSubmit={(e) => (e.preventDefault(), done(text))}
        onKeyDown={(e) => e.key === 'Escape' && (e.stopPropagation(), done(null))}
      >
        <h2 id="confirm-title">{p.title}</h2>
        {p.message && <p id="confirm-message">{p.message}</p>}
        {p.input && (
          <label>
            {p.input}
            <input value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </label>
        )}
        <div class="row">
          <button type="submit" class="primary danger-fill">
            {p.confirm}
          </button>
          <button type="button" onClick={() => done(null)}>
            Cancel
          </button>
        </div>
      </form>
    </div>
  );
}
