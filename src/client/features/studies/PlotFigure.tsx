import * as Plot from '@observablehq/plot';
import { useEffect, useRef } from 'react';

type Options = Parameters<typeof Plot.plot>[0];

/** The plot's SVG as a standalone file (the root <svg> of a figure when Plot wraps it with a legend). */
function svgText(el: SVGSVGElement): string {
  const copy = el.cloneNode(true) as SVGSVGElement;
  copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  if (!copy.getAttribute('style')?.includes('background')) copy.style.background = 'white';
  return new XMLSerializer().serializeToString(copy);
}

function download(href: string, name: string) {
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

export function downloadSvg(el: SVGSVGElement, name: string) {
  const url = URL.createObjectURL(new Blob([svgText(el)], { type: 'image/svg+xml' }));
  download(url, `${name}.svg`);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Draws the SVG onto a canvas at twice its size and downloads that as PNG. */
export function downloadPng(el: SVGSVGElement, name: string) {
  const { width, height } = el.getBoundingClientRect();
  const scale = 2;
  const img = new Image();
  const url = URL.createObjectURL(new Blob([svgText(el)], { type: 'image/svg+xml' }));
  img.onload = () => {
    const canvas = document.createElement('canvas');
    canvas.width = Math.ceil(width * scale);
    canvas.height = Math.ceil(height * scale);
    const ctx = canvas.getContext('2d')!;
    ctx.fillStyle = 'white';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    URL.revokeObjectURL(url);
    canvas.toBlob((blob) => {
      if (!blob) return;
      const png = URL.createObjectURL(blob);
      download(png, `${name}.png`);
      setTimeout(() => URL.revokeObjectURL(png), 1000);
    }, 'image/png');
  };
  img.src = url;
}

/** An Observable Plot figure rendered into a div, with Download SVG / PNG. */
export function PlotFigure({ title, name, options }: { title: string; name: string; options: Options }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const plot = Plot.plot(options);
    el.replaceChildren(plot);
    return () => plot.remove();
  }, [options]);
  // the plot's own <svg>: the root, or (with a legend, Plot wraps it in a <figure>) its direct child — not a swatch's
  const svg = () => {
    const root = ref.current?.firstElementChild;
    if (!root) return null;
    return root instanceof SVGSVGElement ? root : root.querySelector<SVGSVGElement>(':scope > svg');
  };
  return (
    <figure className="plot" data-testid={`plot-${name}`}>
      <figcaption>{title}</figcaption>
      <div ref={ref} className="plot-body" />
      <div className="row">
        <button
          type="button"
          onClick={() => {
            const s = svg();
            if (s) downloadSvg(s, name);
          }}
        >
          Download SVG
        </button>
        <button
          type="button"
          onClick={() => {
            const s = svg();
            if (s) downloadPng(s, name);
          }}
        >
          Download PNG
        </button>
      </div>
    </figure>
  );
}
