using PeftSharp.IO.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Support;

/// <summary>The fixture's ToyConvNet: ids → Embedding(256,16) → [B,16,3,4] → Conv2d(16,8,3,pad 1) → ReLU → flatten → Linear(96,10).</summary>
public sealed class ToyConvNet : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> emb;
    public nn.Module<Tensor, Tensor> conv;
    public nn.Module<Tensor, Tensor> lin;

    public ToyConvNet(long dilation = 1) : base(nameof(ToyConvNet))
    {
        emb = nn.Embedding(256, 16);
        conv = nn.Conv2d(16, 8, 3, padding: dilation, dilation: dilation);
        lin = nn.Linear(96, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var h = emb.call(ids).transpose(1, 2).reshape(ids.shape[0], 16, 3, 4);
        h = nn.functional.relu(conv.call(h)).flatten(1);
        return lin.call(h).MoveToOuterDisposeScope();
    }

    public static ToyConvNet FromFixture()
    {
        var m = new ToyConvNet();
        Weights.LoadInto(m, SharedPaths.Fixture("bases", "toy-conv", "model.safetensors"));
        return m;
    }
}

/// <summary>A user's own module tree: nested modules, Sequential, ModuleList and ModuleDict, with a head.</summary>
public sealed class NestedNet : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> stem;
    public TorchSharp.Modules.ModuleList<nn.Module<Tensor, Tensor>> blocks;
    public TorchSharp.Modules.ModuleDict<nn.Module<Tensor, Tensor>> branches;
    public nn.Module<Tensor, Tensor> lm_head;

    public NestedNet(int d = 6) : base(nameof(NestedNet))
    {
        stem = nn.Sequential(("proj", nn.Linear(4, d)), ("act", nn.Tanh()));
        blocks = new TorchSharp.Modules.ModuleList<nn.Module<Tensor, Tensor>>(new Block(d), new Block(d));
        branches = new TorchSharp.Modules.ModuleDict<nn.Module<Tensor, Tensor>>();
        branches.Add(("left", nn.Linear(d, d)));
        branches.Add(("right", nn.Linear(d, d)));
        lm_head = nn.Linear(d, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = stem.call(x);
        foreach (var b in blocks)
        {
            h = b.call(h);
        }
        h = branches["left"].call(h) + branches["right"].call(h);
        return lm_head.call(h).MoveToOuterDisposeScope();
    }

    public sealed class Block : nn.Module<Tensor, Tensor>
    {
        public nn.Module<Tensor, Tensor> q_proj;
        public nn.Module<Tensor, Tensor> v_proj;

        public Block(int d) : base(nameof(Block))
        {
            q_proj = nn.Linear(d, d);
            v_proj = nn.Linear(d, d, hasBias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            return (x + torch.tanh(q_proj.call(x)) * v_proj.call(x)).MoveToOuterDisposeScope();
        }
    }
}

public static class Weights
{
    /// <summary>Copies every tensor of a safetensors file into the parameter of the same name (all must match).</summary>
    public static void LoadInto(nn.Module module, string path)
    {
        using var file = SafetensorsFile.Open(path);
        using var _ = torch.no_grad();
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(parameters.Keys.OrderBy(k => k), file.Entries.Select(e => e.Name).OrderBy(k => k));
        foreach (var (name, p) in parameters)
        {
            using var t = file.Read(name);
            p.copy_(t);
        }
    }

    public static Tensor Read(string path, string name)
    {
        using var file = SafetensorsFile.Open(path);
        return file.Read(name);
    }

    /// <summary>Reads a manifest-style reference "file.safetensors:key" relative to the fixtures folder.</summary>
    public static Tensor Fixture(string reference)
    {
        var i = reference.LastIndexOf(':');
        return Read(SharedPaths.Fixture(reference[..i]), reference[(i + 1)..]);
    }

    public static Tensor InputIds()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(SharedPaths.Fixture("inputs.json")));
        var rows = doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToArray();
        return torch.tensor(rows.SelectMany(r => r).ToArray(), rows.Length, rows[0].Length);
    }

    /// <summary>Same shape and bitwise-equal values.</summary>
    public static bool Exact(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && (a == b).all().item<bool>();

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
