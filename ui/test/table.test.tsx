// The shared data table: column headers every screen's table has, the actions column named for
// screen readers only (and only when asked for), and the rows the screen gives it.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { Table } from '../src/components/ui';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Table', () => {
  it('heads each column for screen readers and keeps the rows and their hooks', async () => {
    const root = document.body.appendChild(document.createElement('div'));
    await act(() =>
      render(
        <Table label="Grants" class="audit" columns={['Groups', 'Source']} actions>
          <tr data-grant="g1">
            <td>analysts</td>
            <td>api</td>
            <td>
              <button type="button">Remove</button>
            </td>
          </tr>
        </Table>,
        root,
      ),
    );
    const table = document.querySelector('table')!;
    expect(table.getAttribute('aria-label')).toBe('Grants');
    expect(table.getAttribute('class')).toBe('audit');
    const heads = [...table.querySelectorAll('thead th')];
    expect(heads.map((h) => h.getAttribute('scope'))).toEqual(['col', 'col', 'col']);
    expect(heads.map((h) => h.textContent)).toEqual(['Groups', 'Source', 'Actions']);
    // The actions column's name is for screen readers; sighted users see the buttons.
    expect(heads[2].querySelector('.sr-only')?.textContent).toBe('Actions');
    const row = table.querySelector('tbody tr[data-grant="g1"]')!;
    expect([...row.querySelectorAll('td')].map((c) => c.textContent)).toEqual(['analysts', 'api', 'Remove']);
  });

  it('has no actions column unless asked, and no label unless given', async () => {
    const root = document.body.appendChild(document.createElement('div'));
    await act(() => render(<Table columns={['Environment', 'Port']} actions={false}>{null}</Table>, root));
    const table = document.querySelector('table')!;
    expect(table.hasAttribute('aria-label')).toBe(false);
    expect([...table.querySelectorAll('th')].map((h) => h.textContent)).toEqual(['Environment', 'Port']);
    expect(table.querySelectorAll('tbody tr')).toHaveLength(0);
  });
});
