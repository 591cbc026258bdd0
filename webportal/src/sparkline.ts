// Sparklines: a small SVG line of the last samples of one metric.
import { h, svg } from "./dom";

export class Sparkline {
  readonly el: HTMLElement;
  private values: number[] = [];
  private readonly line: SVGElement;
  private readonly value: HTMLElement;

  constructor(readonly label: string, private readonly fmt: (n: number) => string, private readonly max?: number, private readonly keep = 60) {
    this.line = svg("polyline", { fill: "none", stroke: "currentColor", "stroke-width": 1.5, points: "" });
    this.value = h("span", { class: "spark-value" }, "—");
    this.el = h("figure", { class: "spark" }, h("figcaption", null, label, " ", this.value));
    this.el.appendChild(svg("svg", { viewBox: "0 0 120 30", preserveAspectRatio: "none", role: "img", "aria-label": `${label} over the last minutes` }, this.line));
  }

  push(v: number): void {
    this.values.push(v);
    if (this.values.length > this.keep) this.values.shift();
    const top = Math.max(this.max ?? 0, ...this.values, 1e-9);
    const step = 120 / Math.max(this.keep - 1, 1);
    const off = this.keep - this.values.length;
    this.line.setAttribute("points", this.values.map((x, i) => `${((off + i) * step).toFixed(1)},${(29 - (x / top) * 28).toFixed(1)}`).join(" "));
    this.value.textContent = this.fmt(v);
  }
}
