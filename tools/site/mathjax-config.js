// MathJax 3, served from this site (assets/mathjax/, copied from the django-static-mathjax wheel's es5/).
// Notebook markdown keeps $...$ and $$...$$; Markdown pages use arithmatex's \(...\) and \[...\].
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
  },
  options: { skipHtmlTags: ["script", "noscript", "style", "textarea", "pre", "code"] },
};
