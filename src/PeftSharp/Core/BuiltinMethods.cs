using PeftSharp.Methods.Lora;
using PeftSharp.Methods.RandLora;
using PeftSharp.Methods.Vera;

namespace PeftSharp.Core;

/// <summary>The methods PeftSharp ships. One line per method.</summary>
internal static class BuiltinMethods
{
    public static void Register(MethodRegistry registry)
    {
        registry.Add(new LoraMethod());
        registry.Add(new VeraMethod());
        registry.Add(new RandLoraMethod());
    }
}
