using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Mole;

/// <summary>
/// A tiny pre-residual decoder stack with Llama's module names: per layer <c>layers.i.self_attn.q_proj</c> (d → d) and
/// <c>layers.i.mlp.{gate,up,down}_proj</c>: h ← x + q(x); h ← h + down(silu(gate(h)) ⊙ up(h)). Input <c>[B, T, d]</c>.
/// </summary>
public sealed class ToyMoleNet : nn.Module<Tensor, Tensor>
{
    public TorchSharp.Modules.ModuleList<Layer> layers;

    public ToyMoleNet(int d = 6, int ff = 10, int count = 2) : base(nameof(ToyMoleNet))
    {
        layers = new TorchSharp.Modules.ModuleList<Layer>([.. Enumerable.Range(0, count).Select(_ => new Layer(d, ff))]);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = x;
        foreach (var layer in layers)
        {
            h = layer.call(h);
        }
        return h.MoveToOuterDisposeScope();
    }

    public sealed class Layer : nn.Module<Tensor, Tensor>
    {
        public Attention self_attn;
        public Mlp mlp;

        public Layer(int d, int ff) : base(nameof(Layer))
        {
            self_attn = new Attention(d);
            mlp = new Mlp(d, ff);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            var h = x + self_attn.call(x);
            return (h + mlp.call(h)).MoveToOuterDisposeScope();
        }
    }

    public sealed class Attention : nn.Module<Tensor, Tensor>
    {
        public nn.Module<Tensor, Tensor> q_proj;

        public Attention(int d) : base(nameof(Attention))
        {
            q_proj = nn.Linear(d, d);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => q_proj.call(x);
    }

    public sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        public nn.Module<Tensor, Tensor> gate_proj;
        public nn.Module<Tensor, Tensor> up_proj;
        public nn.Module<Tensor, Tensor> down_proj;

        public Mlp(int d, int ff) : base(nameof(Mlp))
        {
            gate_proj = nn.Linear(d, ff);
            up_proj = nn.Linear(d, ff);
            down_proj = nn.Linear(ff, d);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            var z = nn.functional.silu(gate_proj.call(x)) * up_proj.call(x);
            return down_proj.call(z).MoveToOuterDisposeScope();
        }
    }
}
