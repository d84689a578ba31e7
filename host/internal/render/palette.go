package render

import "hash/fnv"

// colors are Tableau's 20 without its red, which marks failures.
var colors = []string{
	"#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#8cd17d", "#b6992d", "#f1ce63",
	"#499894", "#86bcb6", "#79706e", "#bab0ac", "#d37295", "#fabfd2", "#b07aa1", "#d4a6c8",
	"#9d7660", "#d7b5a6", "#76b7b2", "#edc948",
}

// failColor marks failing entries and hazards.
const failColor = "#d62728"

// palette gives each module its colour: in the order they are listed,
// so the modules of one picture differ as long as there are colours.
type palette map[string]string

func newPalette(modules []string) palette {
	p := palette{}
	for i, m := range modules {
		if _, ok := p[m]; !ok {
			p[m] = colors[i%len(colors)]
		}
	}
	return p
}

// color is module's colour; a module not listed gets one by its name.
func (p palette) color(module string) string {
	if c, ok := p[module]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(module))
	return colors[h.Sum32()%uint32(len(colors))]
}
