using System.Reflection;
using PeftSharp.IO;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using PeftSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>Names, registration and injectability: the contract the adapter injector relies on.</summary>
public class ModelStructureTests
{
    public static TheoryData<string> Folders() => new(
        SharedPaths.Fixture("bases", "llama"),
        SharedPaths.Fixture("bases", "llama-tied-rope-scaling"),
        SharedPaths.Fixture("bases", "qwen2"),
        SharedPaths.Fixture("bases", "mistral"),
        SharedPaths.Fixture("bases", "llama-seqcls"),
        SharedPaths.Fixture("bases", "gpt2"),
        SharedPaths.Fixture("bases", "bert-seqcls"),
        SharedPaths.Asset("models", "stories260K"),
        SharedPaths.Asset("models", "all-MiniLM-L6-v2"));

    [Theory]
    [MemberData(nameof(Folders))]
    public void State_dict_names_equal_checkpoint_keys_exactly(string folder)
    {
        using var model = AutoModel.FromPretrained(folder);
        using var checkpoint = HfCheckpoint.Open(folder);
        var parameterNames = model.named_parameters().Select(p => p.name).Order(StringComparer.Ordinal).ToList();
        var stateNames = model.state_dict().Keys.Order(StringComparer.Ordinal).ToList();
        var keys = checkpoint.Keys.Order(StringComparer.Ordinal).ToList();
        Assert.Equal(keys, parameterNames);
        // No stray buffers (rotary tables, masks) in the state dict.
        Assert.Equal(keys, stateNames);
        Assert.Empty(model.named_buffers());
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void Every_linear_conv1d_and_embedding_is_a_replaceable_field_with_its_hf_name(string folder)
    {
        using var model = AutoModel.FromPretrained(folder);
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var leaves = modules.Where(m => m.Value is Linear or Conv1D or Embedding || m.Value is TiedLmHead).ToList();
        Assert.NotEmpty(leaves);
        foreach (var (name, leaf) in leaves)
        {
            var dot = name.LastIndexOf('.');
            var parent = dot < 0 ? model : modules[name[..dot]];
            var field = parent.GetType().GetField(name[(dot + 1)..], BindingFlags.Public | BindingFlags.Instance);
            Assert.True(field is not null, $"{name}: no public field '{name[(dot + 1)..]}' on {parent.GetType().Name}");
            Assert.Equal(typeof(nn.Module<Tensor, Tensor>), field!.FieldType);
            Assert.False(field.IsInitOnly, $"{name} is readonly");
            Assert.Same(leaf, field.GetValue(parent));
        }
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void Forward_calls_through_the_field_so_a_swapped_child_is_used(string folder)
    {
        using var model = AutoModel.FromPretrained(folder);
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var wrappers = new List<CountingWrapper>();
        foreach (var (name, leaf) in modules.Where(m => m.Value is Linear or Conv1D).ToList())
        {
            var dot = name.LastIndexOf('.');
            var parent = dot < 0 ? model : modules[name[..dot]];
            var field = parent.GetType().GetField(name[(dot + 1)..])!;
            var wrapper = new CountingWrapper((nn.Module<Tensor, Tensor>)leaf);
            field.SetValue(parent, wrapper);
            wrappers.Add(wrapper);
        }
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        model.Forward(torch.tensor(new long[] { 1, 5, 7 }).unsqueeze(0));
        Assert.All(wrappers, w => Assert.Equal(1, w.Calls));
    }

    [Fact]
    public void Output_heads_are_named_as_peft_expects()
    {
        using var llama = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama"));
        using var seqcls = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama-seqcls"));
        using var gpt2 = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "gpt2"));
        using var bert = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "bert-seqcls"));
        Assert.Equal(["lm_head"], llama.OutputHeadNames);
        Assert.Equal(["score"], seqcls.OutputHeadNames);
        Assert.Equal(["lm_head"], gpt2.OutputHeadNames);
        Assert.Equal(["classifier"], bert.OutputHeadNames);
        foreach (var model in new[] { llama, seqcls, gpt2, bert })
        {
            var names = model.named_modules().Select(m => m.name).ToHashSet();
            Assert.Superset(model.OutputHeadNames.ToHashSet(), names);
        }
    }

    [Fact]
    public void Tied_head_follows_the_embedding_weight()
    {
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "llama-tied-rope-scaling"));
        var head = Assert.IsType<TiedLmHead>(((PeftSharp.Models.Llama.LlamaForCausalLM)model).lm_head);
        var embedding = model.named_parameters().Single(p => p.name == "model.embed_tokens.weight").parameter;
        using var scope = torch.NewDisposeScope();
        using (torch.no_grad())
        {
            embedding.mul_(2);
        }
        // Shared storage, not a copy: the head sees the doubled weight.
        Assert.Equal(0, ModelFixtures.MaxAbsDiff(head.Weight, embedding));
    }

    private sealed class CountingWrapper : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> _inner;

        public CountingWrapper(nn.Module<Tensor, Tensor> inner) : base("CountingWrapper")
        {
            _inner = inner;
        }

        public int Calls { get; private set; }

        public override Tensor forward(Tensor x)
        {
            Calls++;
            return _inner.call(x);
        }
    }
}
