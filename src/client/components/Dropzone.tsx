import { type DragEvent, type ReactNode, useState } from 'react';

/** A panel files can be dropped on, highlighted while something is dragged over it. */
export function Dropzone(props: { onDrop(e: DragEvent): void; children: ReactNode }) {
  const [over, setOver] = useState(false);
  return (
    <div
      className={`dropzone ${over ? 'over' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        props.onDrop(e);
      }}
    >
      {props.children}
    </div>
  );
}
